"""bench.replication_power: the seeds-for-power formula against a simulated one-sided paired t-test, and
the pairing of replication runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bench import replication_power as rp


@pytest.mark.parametrize("mean, sd", [(-0.05, 0.05), (-0.03, 0.03), (-0.11, 0.2)])
def test_seeds_for_power_gives_about_the_nominal_power_by_simulation(mean, sd):
    n = int(rp.seeds_for_power(mean, sd))
    rng = np.random.default_rng(0)
    d = rng.normal(mean, sd, size=(4000, n))
    p = stats.ttest_1samp(d + rp.DELTA, 0.0, axis=1, alternative="less").pvalue
    power = float(np.mean(p < rp.ALPHA))
    # a normal approximation to the t-test: at most a few points under 0.9 at these sizes, never far over
    assert 0.82 <= power <= 0.93, (n, power)


def test_seeds_for_power_edges():
    assert rp.seeds_for_power(-0.01, 0.1) == math.inf and rp.seeds_for_power(0.02, 0.1) == math.inf
    assert rp.seeds_for_power(-0.5, 0.0) == 2.0
    assert rp.seeds_for_power(-0.03, 0.05) > rp.seeds_for_power(-0.06, 0.05)
    with pytest.raises(ValueError):
        rp.seeds_for_power(float("nan"), 0.1)
    with pytest.raises(ValueError):
        rp.seeds_for_power(-0.1, -1.0)


def test_paired_deltas_pair_by_seed_with_the_architectures_scratch():
    rows = [{"target": "t", "source": "zoo:cnn_small.a", "arch": "cnn_small", "arm": "finetune", "seed": s,
             "metric": m} for s, m in (("100", "0.5"), ("101", "0.7"), ("102", "0.9"))]
    rows += [{"target": "t", "source": "scratch", "arch": "cnn_small", "arm": "scratch", "seed": s, "metric": m}
             for s, m in (("101", "0.6"), ("100", "0.4"))]
    rows += [{"target": "t", "source": "zoo:vit_tiny.b", "arch": "vit_tiny", "arm": "finetune", "seed": "100",
              "metric": "0.1"}]
    out = rp.paired_deltas(rows)
    assert list(out) == [("t", "zoo:cnn_small.a")]  # seed 102 has no scratch; vit has no scratch at all
    assert out[("t", "zoo:cnn_small.a")] == pytest.approx([0.1, 0.1])
