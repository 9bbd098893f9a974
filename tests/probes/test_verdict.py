"""Verdict statistics against scipy on fixed inputs, the decision rules, and CI coverage under the null."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from app.enums import Verdict
from app.probes.verdict import (
    bootstrap_mean_ci,
    decide,
    extra_seeds_needed,
    holm,
    judge,
    one_sided_tests,
    paired_deltas,
)

DELTAS = [-0.031, -0.012, -0.044, 0.006, -0.027, -0.019, -0.035]


def test_one_sided_tests_match_scipy():
    p_less, p_greater = one_sided_tests(DELTAS)
    assert p_less["wilcoxon"] == pytest.approx(stats.wilcoxon(DELTAS, alternative="less").pvalue)
    assert p_greater["wilcoxon"] == pytest.approx(stats.wilcoxon(DELTAS, alternative="greater").pvalue)
    zeros = np.zeros(len(DELTAS))
    assert p_less["t"] == pytest.approx(stats.ttest_rel(DELTAS, zeros, alternative="less").pvalue)
    assert p_greater["t"] == pytest.approx(stats.ttest_rel(DELTAS, zeros, alternative="greater").pvalue)
    # exact Wilcoxon, n = 5, all negative: the smallest attainable one-sided p is 1/32
    assert one_sided_tests([-0.1, -0.2, -0.3, -0.4, -0.5])[0]["wilcoxon"] == pytest.approx(1 / 32)


def test_degenerate_deltas():
    assert one_sided_tests([0.0] * 5) == ({"wilcoxon": 1.0, "t": 1.0}, {"wilcoxon": 1.0, "t": 1.0})
    p_less, p_greater = one_sided_tests([-0.02] * 5)
    assert p_less["t"] == 1.0 and p_greater["t"] == 1.0  # zero spread is no evidence, never p = 0
    assert bootstrap_mean_ci([0.0] * 5) == (0.0, 0.0)


def test_identical_deltas_are_inconclusive_never_confident():
    # the case: 2 seeds with identical Δ used to give `positive`, CI [+0.417, +0.417], p = 0
    two = judge({"zoo:a.x": _arms([0.917, 0.917], [0.5, 0.5])}, min_seeds=2, test="t")[0]
    assert two.verdict == "inconclusive" and two.p_value > 0
    assert "zero spread" in two.text and two.details["reason"].startswith("zero spread")
    five = judge({"zoo:a.x": _arms([0.8] * 5, [0.7] * 5)}, test="t")[0]
    assert five.verdict == "inconclusive" and five.details["p_raw"] == 1.0


def _holm_slow(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adj = [0.0] * m
    for k, i in enumerate(order):
        adj[i] = min(1.0, max(min(1.0, (m - j) * p[order[j]]) for j in range(k + 1)))
    return adj


def test_holm_matches_definition():
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    assert holm(p) == pytest.approx(_holm_slow(p))
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.025, 0.5])
    assert holm([0.02, None, 0.04]) == [0.04, None, 0.04]


def test_percentile_bootstrap_agrees_with_scipy():
    ours = bootstrap_mean_ci(DELTAS, n_resamples=40_000, seed=1, expanded=False)
    ref = stats.bootstrap((np.array(DELTAS),), np.mean, method="percentile", n_resamples=40_000,
                          random_state=np.random.default_rng(2)).confidence_interval
    assert ours == pytest.approx((ref.low, ref.high), abs=1.5e-3)


def test_bootstrap_is_seeded_and_expanded_is_wider():
    assert bootstrap_mean_ci(DELTAS, seed=3) == bootstrap_mean_ci(DELTAS, seed=3)
    plain = bootstrap_mean_ci(DELTAS, expanded=False)
    wide = bootstrap_mean_ci(DELTAS)
    assert wide[0] < plain[0] and wide[1] > plain[1]
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_mean_ci([0.1])


@pytest.mark.parametrize("n", [5, 10])
def test_bootstrap_ci_coverage_on_a_simulated_null(n):
    rng = np.random.default_rng(n)
    repeats = 300
    hits = 0
    for _ in range(repeats):
        deltas = rng.normal(0.0, 0.02, size=n)
        low, high = bootstrap_mean_ci(deltas, n_resamples=2000, seed=int(rng.integers(1 << 30)))
        hits += low <= 0.0 <= high
    assert hits / repeats >= 0.90


def test_decision_rules():
    assert decide(-0.08, -0.02, 0.01) is Verdict.negative_transfer
    assert decide(0.02, 0.08, 0.01) is Verdict.positive
    assert decide(-0.008, 0.009, 0.01) is Verdict.no_benefit
    assert decide(-0.03, 0.002, 0.01) is Verdict.inconclusive
    assert decide(-0.03, -0.005, 0.01) is Verdict.inconclusive  # below zero but not clear of −δ


def test_extra_seeds_follow_the_observed_spread():
    small = extra_seeds_needed(0.03, 0.02, 5, 0.01)
    large = extra_seeds_needed(0.03, 0.04, 5, 0.01)
    assert 0 < small < large
    # check the suggestion: with n + extra seeds the t half-width clears the room to the boundary
    total = 5 + small
    assert stats.t.ppf(0.975, total - 1) * 0.02 / math.sqrt(total) < 0.02
    assert extra_seeds_needed(0.01, 0.05, 5, 0.01) == 100  # on the boundary: capped


def _arms(finetune, scratch):
    return {"finetune": dict(enumerate(finetune)), "scratch": dict(enumerate(scratch))}


def test_judge_verdicts_holm_and_text():
    scratch = [0.70, 0.72, 0.69, 0.71, 0.70, 0.73]
    cands = {
        "zoo:a.neg": _arms([s - 0.10 + 0.01 * (i % 2) for i, s in enumerate(scratch)], scratch),
        "zoo:a.pos": _arms([s + 0.12 - 0.01 * (i % 3) for i, s in enumerate(scratch)], scratch),
        "zoo:a.same": _arms([s + d for s, d in zip(scratch, [0.001, -0.002, 0.0, 0.002, -0.001, 0.001], strict=True)],
                            scratch),
        "zoo:a.noisy": _arms([s + d for s, d in zip(scratch, [0.05, -0.06, 0.04, -0.05, 0.07, -0.02], strict=True)], scratch),
        "zoo:a.small": _arms([s + 0.02 + 0.001 * i for i, s in enumerate(scratch)], scratch),
    }
    out = {v.backbone_id: v for v in judge(cands, margin=0.01)}
    assert out["zoo:a.neg"].verdict == "negative_transfer"
    assert out["zoo:a.pos"].verdict == "positive"
    assert out["zoo:a.same"].verdict == "no_benefit"
    assert out["zoo:a.noisy"].verdict == "inconclusive"
    assert out["zoo:a.noisy"].details["suggested_extra_seeds"] >= 1
    assert "more paired seeds" in out["zoo:a.noisy"].text
    assert out["zoo:a.small"].verdict == "positive" and "He et al., 2019" in out["zoo:a.small"].text
    assert "weak evidence" in out["zoo:a.small"].text and "weak evidence" not in out["zoo:a.pos"].text
    assert "strong evidence of negative transfer" in out["zoo:a.neg"].text
    neg = out["zoo:a.neg"]
    raw = stats.wilcoxon(np.array([f - s for f, s in zip(cands["zoo:a.neg"]["finetune"].values(), scratch, strict=True)]),
                         alternative="less").pvalue
    assert neg.details["p_raw"] == pytest.approx(raw)
    assert neg.p_value >= neg.details["p_raw"]  # Holm never lowers a p-value
    assert neg.n_seeds == 6 and neg.ci_high < -0.01
    assert set(neg.to_dict()) == {"backbone_id", "verdict", "delta_mean", "ci_low", "ci_high", "p_value",
                                  "n_seeds", "text", "details"}


def test_judge_needs_enough_paired_seeds():
    few = judge({"zoo:a.x": _arms([0.5, 0.6, 0.55], [0.9, 0.95, 0.92])}, min_seeds=5)[0]
    assert few.verdict == "inconclusive" and few.details["suggested_extra_seeds"] >= 2
    one = judge({"zoo:a.x": {"finetune": {0: 0.5}, "scratch": {0: 0.9, 1: 0.8}}})[0]
    assert one.verdict == "inconclusive" and one.delta_mean is None and one.n_seeds == 1
    assert paired_deltas({0: 0.5, 1: float("nan"), 2: 0.7}, {0: 0.4, 1: 0.3, 2: 0.6})[0] == (0, 2)


def test_judge_side_comparisons():
    arms = _arms([0.8] * 5, [0.7, 0.71, 0.69, 0.7, 0.72])
    arms["reference"] = {i: 0.9 + 0.001 * i for i in range(5)}
    arms["linear"] = {i: 0.6 for i in range(5)}
    v = judge({"zoo:a.r": arms})[0]
    assert v.details["finetune_minus_reference"]["verdict"] == "negative_transfer"
    assert v.details["linear_minus_scratch"]["verdict"] == "negative_transfer"


def test_judge_rejects_bad_options():
    with pytest.raises(ValueError, match="test must be"):
        judge({}, test="anova")
    with pytest.raises(ValueError, match="margin"):
        judge({}, margin=-1)
