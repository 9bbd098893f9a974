"""End to end on synthetic tasks with known answers: the verdict must find what was built in.

Target: 4-class XOR-of-signs on 8-d Gaussians, 120 labelled rows — hard from scratch at this size.
Sources (same tiny MLP): pretrained on a large sample of the target's own distribution (→ positive);
pretrained on shuffled labels (→ negative transfer); adversarial weights whose features are switched off
(→ negative transfer); "pretrained" weights identical to the scratch initialisation (→ no benefit).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from app.probes import ProbeBudget, ProbeData, RunCache, judge, run_probe
from app.probes.halving import ProbeCandidate, rung_schedule, successive_halving
from tests.kits.probes import MlpAdapter, dead_relu_state, pretrain, xor_task

BUDGET = ProbeBudget(steps=100, eval_every=20, batch_size=32, lr_grid=(1e-2,), linear_lr_grid=(3e-2,))


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sources():
    torch.set_num_threads(1)
    xs, ys = xor_task(2000, 99)
    shuffled = ys[np.random.default_rng(0).permutation(len(ys))]
    return {
        "good": MlpAdapter("good", pretrain(MlpAdapter, xs, ys, steps=400)),
        "shuffled": MlpAdapter("shuffled", pretrain(MlpAdapter, xs, shuffled, steps=800, lr=1e-2)),
        "adversarial": MlpAdapter("adversarial", dead_relu_state(MlpAdapter)),
        "identical": MlpAdapter("identical", pretrained_like_scratch=True),
    }


@pytest.fixture(scope="module")
def verdicts(sources):
    x, y = xor_task(240, 1)
    cache = RunCache()
    results = {a.spec.id: run_probe(a, "fc2", x, y, arms=("finetune", "scratch"), seeds=5, budget=BUDGET,
                                    device="cpu", shared=cache) for a in sources.values()}
    assert cache.hits == 15  # one scratch baseline per seed, shared by the four same-architecture sources
    return {v.backbone_id.split(".")[1]: v for v in judge(results, margin=0.01)}


def test_source_from_the_targets_own_distribution_is_positive(verdicts):
    v = verdicts["good"]
    assert v.verdict == "positive" and v.ci_low > 0.01 and v.delta_mean > 0.05


@pytest.mark.parametrize("name", ["shuffled", "adversarial"])
def test_shuffled_or_adversarial_source_is_negative_transfer(verdicts, name):
    v = verdicts[name]
    assert v.verdict == "negative_transfer" and v.ci_high < -0.01
    assert v.details["p_raw"] == pytest.approx(1 / 32)  # all five seeds agree: the exact Wilcoxon floor
    assert "strong evidence of negative transfer" in v.text


def test_identical_weights_to_scratch_is_no_benefit(verdicts):
    v = verdicts["identical"]
    assert v.verdict == "no_benefit" and v.delta_mean == 0.0 and v.ci_low == v.ci_high == 0.0


def test_successive_halving_keeps_the_best_and_shares_scratch(sources):
    x, y = xor_task(240, 1)
    data = ProbeData(x, y, task_type="classification")
    cands = [ProbeCandidate(a, "fc2", data) for a in sources.values()]
    assert rung_schedule(4, 100, eta=2, min_steps=20) == [(25, 4), (50, 2), (100, 1)]
    seen = []
    scratch_builds = sum(1 for a in sources.values() for c in a.trunk_calls if not c[1])
    out = successive_halving(cands, seeds=3, budget=BUDGET, final_arms=("finetune", "scratch"), device="cpu",
                             progress=lambda d, t: seen.append((d, t)))
    assert [r.steps for r in out.rungs] == [25, 50, 100]
    assert [len(r.candidates) for r in out.rungs] == [4, 2, 1]
    assert out.finalists == ["zoo:mlp_tiny.good"]
    assert out.reached["zoo:mlp_tiny.adversarial"] == 25 and out.reached["zoo:mlp_tiny.good"] == 100
    assert seen[-1] == (seen[-1][1], seen[-1][1]) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    # scratch trained once per (rung, seed) for this one architecture, then shared
    assert sum(1 for a in sources.values() for c in a.trunk_calls if not c[1]) - scratch_builds == 3 * 3
    # bounded cost: every rung costs about one full budget per seed (plus its scratch baselines)
    assert out.cost_ratio <= 3 * (len(out.rungs) + 1) * 2
    verdicts = {v.backbone_id: v.verdict for v in judge(out.results)}
    assert verdicts["zoo:mlp_tiny.adversarial"] in ("negative_transfer", "inconclusive")
    assert out.to_dict()["rungs"][0]["kept"] == out.rungs[1].candidates
    json.dumps(out.to_dict(), allow_nan=False)
    json.dumps([v.to_dict() for v in judge(out.results)], allow_nan=False)
