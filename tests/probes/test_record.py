"""The verdict record: what was run, time-outs never counted silently, rows the API can serve."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from app.probes import ProbeBudget, run_probe
from app.probes.record import paired_evidence, verdict_records
from app.probes.sequential import SequentialDesign
from tests.kits.probes import MlpAdapter, xor_task

DESIGN = SequentialDesign()


def _row(arm, seed, metric, *, steps=50, budget=50, timed_out=False, lr=3e-3, shared_from=None):
    details = {"lr": lr, "budget": {"steps": budget}, "timed_out": timed_out, "metric_name": "accuracy"}
    if shared_from:
        details["shared_from"] = shared_from
    return {"arm": arm, "seed": seed, "metric": metric, "steps": steps, "seconds": 0.5,
            "curve": [{"step": 0, "train_loss": None, "val_metric": 0.25}, {"step": steps, "train_loss": 0.9,
                                                                            "val_metric": metric}],
            "details": details}


def _candidate(deltas, *, timed_out=(), scratch=0.8):
    rows = []
    for seed, d in enumerate(deltas):
        rows.append(_row("scratch", seed, scratch, shared_from="zoo:other.x"))
        late = seed in timed_out
        rows.append(_row("finetune", seed, scratch + d, steps=3 if late else 50, timed_out=late, lr=1e-3))
    return rows


def test_timed_out_runs_are_excluded_and_said():
    rows = _candidate([-0.1, -0.12, -0.09, -0.11, -0.1, -0.13, -0.08], timed_out=(1, 4))
    deltas, excluded = paired_evidence(rows)
    assert sorted(deltas) == [0, 2, 3, 5, 6] and set(excluded) == {1, 4}
    assert "finetune timed out" in excluded[1]
    rec = verdict_records({"zoo:a.neg": rows}, DESIGN, rounds=2)[0]
    assert rec.n_seeds == 5 and rec.excluded_seeds.keys() == {1, 4}
    assert rec.arms["finetune"].timed_out == [1, 4] and rec.arms["finetune"].steps_run[1] == 3
    assert any("2 of 7 finetune runs timed out" in w and "not counted" in w for w in rec.warnings)
    assert "Warning: 2 of 7 finetune runs timed out" in rec.text
    counted = verdict_records({"zoo:a.neg": rows}, DESIGN, rounds=2, count_timed_out=True)[0]
    assert counted.n_seeds == 7 and any("counted as evidence anyway" in w for w in counted.warnings)


def test_all_timed_out_is_inconclusive_with_no_evidence():
    rows = _candidate([-0.1] * 5, timed_out=range(5))
    rec = verdict_records({"zoo:a.x": rows}, DESIGN, rounds=1)[0]
    assert rec.verdict == "inconclusive" and rec.delta_mean is None and rec.n_seeds == 0
    assert "No seed has both" in rec.text and rec.warnings
    # the timed-out seeds are never proposed again
    assert rec.stats["next_seeds"] == [5]  # the first round (6 seeds) is completed, never repeated


def test_record_says_what_was_run():
    rows = _candidate([0.2, 0.22, 0.19, 0.21, 0.25])
    rec = verdict_records({"zoo:a.pos": rows, "zoo:a.neg": _candidate([-0.2, -0.22, -0.19, -0.21, -0.25])},
                          DESIGN, rounds={"zoo:a.pos": 1, "zoo:a.neg": 1})[0]
    assert rec.verdict == "positive" and rec.stop_reason == "settled" and rec.rounds == 1
    assert rec.seeds == [0, 1, 2, 3, 4] and rec.metric_name == "accuracy"
    ft, sc = rec.arms["finetune"], rec.arms["scratch"]
    assert ft.metric_mean == pytest.approx(0.8 + np.mean([0.2, 0.22, 0.19, 0.21, 0.25]))
    assert sc.metric_mean == pytest.approx(0.8) and sc.shared_from == {s: "zoo:other.x" for s in range(5)}
    assert set(ft.learning_rates.values()) == {1e-3} and set(ft.steps_run.values()) == {50}
    assert len(ft.curves[0]) == 2 and rec.p_value == rec.p_holm["positive"] <= 0.05
    assert rec.ci_low > 0 and rec.stats["n_candidates"] == 2
    assert "2 candidates" in rec.text and "1 round(s), stopped once settled" in rec.text
    data = json.loads(json.dumps(rec.to_dict(), allow_nan=False))
    assert data["arms"]["finetune"]["steps_run"]["0"] == 50
    row = rec.row()
    assert set(row) == {"verdict", "delta_mean", "ci_low", "ci_high", "p_value", "n_seeds", "text", "details"}
    assert row["details"]["stop_reason"] == "settled" and row["details"]["design"]["schedule"][0] == 6


def test_time_budget_and_zero_spread_are_said():
    recs = verdict_records({"zoo:a.x": _candidate([0.01, -0.02, 0.03]), "zoo:a.flat": _candidate([0.05] * 6)},
                           DESIGN, rounds=1, stopped={"zoo:a.x": "time_budget"})
    x, flat = recs
    assert x.stop_reason == "time_budget" and any("time budget" in w for w in x.warnings)
    assert "stopped by the job's time budget" in x.text
    assert flat.verdict == "inconclusive" and any("zero spread" in w for w in flat.warnings)


def test_skewed_deltas_warn():
    rec = verdict_records({"zoo:a.s": _candidate([0.01, 0.012, 0.011, 0.009, 0.01, 0.013, -0.3])}, DESIGN,
                          rounds=2)[0]
    assert any("strongly skewed" in w for w in rec.warnings)


def test_records_from_real_runs():
    torch.set_num_threads(1)
    x, y = xor_task(120, 1)
    budget = ProbeBudget(steps=20, eval_every=10, batch_size=16, lr_grid=(1e-2,))
    res = run_probe(MlpAdapter("src"), "fc2", x, y, arms=("finetune", "scratch"), seeds=3, budget=budget,
                    device="cpu")
    rec = verdict_records({res.backbone_id: res.runs}, DESIGN, rounds=1)[0]
    assert rec.n_seeds == 3 and rec.verdict == "inconclusive" and rec.stop_reason == "continue"
    assert rec.arms["scratch"].budget_steps == {0: 20, 1: 20, 2: 20}
    assert rec.arms["finetune"].learning_rates == {0: 1e-2, 1: 1e-2, 2: 1e-2}
    json.dumps(rec.to_dict(), allow_nan=False)


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="ambiguous"):
        paired_evidence([_row("finetune", 0, 0.5), _row("finetune", 0, 0.6)])
    with pytest.raises(ValueError, match="needs the fields"):
        paired_evidence([{"metric": 0.5}])
    with pytest.raises(ValueError, match="at least one candidate"):
        verdict_records({}, DESIGN, rounds=0)
    with pytest.raises(ValueError, match="rounds"):
        verdict_records({"a": []}, DESIGN, rounds=-1)


def test_linear_evidence_decides_and_the_record_says_so():
    noisy = [0.2, -0.15, 0.1, -0.05, 0.12, -0.1]
    rows = _candidate(noisy)
    rows += [_row("linear", seed, 0.8 + g) for seed, g in enumerate([0.2, 0.21, 0.19, 0.22, 0.2, 0.18])]
    deltas, _ = paired_evidence(rows, arm="linear")
    assert deltas == pytest.approx({s: g for s, g in enumerate([0.2, 0.21, 0.19, 0.22, 0.2, 0.18])})
    (plain,) = verdict_records({"zoo:a.x": rows}, DESIGN, rounds=1)
    assert plain.verdict == "inconclusive" and plain.decided_by is None
    (rec,) = verdict_records({"zoo:a.x": rows}, DESIGN, rounds=1, linear_evidence=True)
    assert rec.verdict == "positive" and rec.decided_by == "linear" and rec.evidence.startswith("linear − scratch")
    assert rec.p_value == rec.p_holm["positive_linear"] <= DESIGN.alpha
    assert rec.delta_mean == pytest.approx(np.mean(noisy))  # the fine-tune Δ is still what delta_mean reports
    assert rec.stats["linear"]["n"] == 6 and rec.stats["linear"]["mean"] == pytest.approx(0.2, abs=0.01)
    assert "Decided by the linear probe" in rec.text and "frozen features" in rec.text
    row = rec.row()
    assert row["verdict"] == "positive" and row["details"]["decided_by"] == "linear"
    json.dumps(row)  # the API serves it
    (neg,) = verdict_records({"zoo:a.n": _candidate([-0.1, -0.12, -0.09, -0.11, -0.1, -0.13])
                              + [_row("linear", s, 0.9) for s in range(6)]}, DESIGN, rounds=1, linear_evidence=True)
    assert neg.verdict == "negative_transfer" and neg.decided_by == "finetune"
    assert neg.evidence.startswith("finetune − scratch")
