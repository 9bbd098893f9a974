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
from app.probes.halving import ProbeCandidate, halving_step, rung_schedule, successive_halving
from app.probes.sequential import SequentialDesign, look
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


def test_identical_weights_to_scratch_is_zero_spread_inconclusive(verdicts):
    # the two arms are the same computation: Δ = 0 exactly in every seed, which no paired test can read as
    # evidence of equivalence (it is the signature of a degenerate probe), so it must not look confident
    v = verdicts["identical"]
    assert v.verdict == "inconclusive" and v.delta_mean == 0.0 and v.ci_low == v.ci_high == 0.0
    assert "zero spread" in v.text


def test_successive_halving_keeps_the_best_and_shares_scratch(sources):
    x, y = xor_task(240, 1)
    data = ProbeData(x, y, task_type="classification")
    cands = [ProbeCandidate(a, "fc2", data) for a in sources.values()]
    assert rung_schedule(4, 100, eta=2, min_steps=20) == [(25, 4), (50, 2), (100, 1)]
    seen = []
    scratch_builds = sum(1 for a in sources.values() for c in a.trunk_calls if not c[1])
    design = SequentialDesign(first_round=3, max_seeds=3, min_seeds=3)
    out = successive_halving(cands, design=design, budget=BUDGET, final_arms=("finetune", "scratch"), device="cpu",
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
    # every candidate has a record from the rung it reached, and the abandoned ones say so
    assert set(out.records) == {c.id for c in cands}
    dropped = [r for r in out.records.values() if r.stop_reason == "abandoned"]
    assert dropped and all("abandoned by successive halving" in r.text for r in dropped)
    assert all(r.arms["finetune"].budget_steps[0] == out.reached[r.backbone_id] for r in out.records.values())
    assert all(r.stats["n_candidates"] == 4 * 3 for r in out.records.values())  # Holm over candidates × rungs
    assert out.to_dict()["rungs"][0]["kept"] == out.rungs[1].candidates
    json.dumps(out.to_dict(), allow_nan=False)
    json.dumps([v.to_dict() for v in judge(out.results)], allow_nan=False)


def test_halving_step_settles_negative_transfer_and_promotes_by_fine_tune_metric():
    design = SequentialDesign()
    looks = look({"neg": dict(enumerate([-0.3, -0.32, -0.29, -0.31, -0.3, -0.33])),
                  "a": dict(enumerate([0.01, -0.02, 0.03, 0.0, 0.01])),
                  "b": dict(enumerate([0.05, 0.02, 0.0, 0.04, -0.01])),
                  "c": dict(enumerate([0.2, 0.22, 0.19, 0.25, 0.21]))}, design, family_size=8)
    rung = halving_step(looks, {"neg": 0.5, "a": 0.7, "b": 0.6, "c": None}, keep=2, steps=25)
    assert rung.stopped == {"neg": "settled", "c": "abandoned"} and rung.kept == ["a", "b"]
    with pytest.raises(ValueError, match="exactly the candidates"):
        halving_step(looks, {"a": 0.1}, keep=1, steps=25)
    with pytest.raises(ValueError, match="keep"):
        halving_step(looks, {"neg": 0.5, "a": 0.7, "b": 0.6, "c": None}, keep=0, steps=25)


def test_halving_final_rung_runs_sequential_rounds(sources):
    x, y = xor_task(240, 1)
    data = ProbeData(x, y, task_type="classification")
    cands = [ProbeCandidate(sources[n], "fc2", data) for n in ("good", "identical")]
    design = SequentialDesign(first_round=3, round_size=2, max_seeds=7, min_seeds=3, futility_ratio=None)
    out = successive_halving(cands, design=design, budget=BUDGET, final_arms=("finetune", "scratch"), device="cpu")
    final = out.records[out.finalists[0]]
    assert final.rounds >= 1 and final.n_seeds == len(final.seeds) <= 7
    assert final.stop_reason in ("settled", "max_seeds")
    assert (final.stop_reason == "max_seeds") == (final.verdict == "inconclusive")
    if final.rounds > 1:
        assert final.n_seeds == design.seeds_after(final.rounds - 1)


def test_rung_budgets_strictly_grow_and_a_min_steps_at_the_full_budget_leaves_one_rung():
    assert rung_schedule(5, 150, eta=2, min_steps=25) == [(25, 5), (37, 3), (75, 2), (150, 1)]
    # 40 // 8, 40 // 4 and 40 // 2 all rise to min_steps: one short rung, cut straight to the finalist
    assert rung_schedule(5, 40, eta=2, min_steps=25) == [(25, 5), (40, 1)]
    assert rung_schedule(5, 25, eta=2, min_steps=25) == [(25, 5)]
    assert rung_schedule(7, 150, eta=3, min_steps=25, final_candidates=2) == [(25, 7), (50, 3), (150, 2)]
    assert rung_schedule(1, 150) == [(150, 1)]
    for n in range(1, 12):
        for steps in (10, 40, 150, 1000):
            rungs = rung_schedule(n, steps, eta=2, min_steps=25)
            budgets = [s for s, _ in rungs]
            assert budgets == sorted(set(budgets)) and budgets[-1] == steps and rungs[0][1] == n
