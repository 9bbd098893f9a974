"""Ground truth v2 of the transfer benchmark: the practical negative-transfer test at its nominal level, the
learning-rate choice, resumability, the summaries, the convergence check, the evaluation on synthetic CSVs,
and a tiny real run through the probe runner."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from app.ranking import fit as F
from bench.transfer import convergence as conv
from bench.transfer import evaluate as ev
from bench.transfer import ground_truth_v2 as gt
from bench.transfer.targets import CUT_POINT_TARGETS, TARGETS, target


def test_v2_targets_breadth():
    fit = [t for t in TARGETS if t.role == "fit"]
    hold = [t for t in TARGETS if t.role == "holdout"]
    assert len(fit) >= 8 and len(hold) >= 2 and len(CUT_POINT_TARGETS) >= 3
    assert sum(t.shots >= 60 for t in fit) >= 2  # targets where scratch can be strong
    assert len({t.seed for t in TARGETS}) == len(TARGETS)
    xtr, ytr, xte, yte = target("digits_colour").load()
    assert np.bincount(ytr).tolist() == [20] * 10 and len(xtr) + len(xte) == 697


@pytest.mark.parametrize("mean, expected", [(-gt.DELTA, gt.ALPHA), (-gt.DELTA + 0.02, None)])
def test_practical_negative_test_holds_its_level(mean, expected):
    rng = np.random.default_rng(3)
    sims = 20_000
    d = rng.normal(mean, 0.02, size=(sims, 5))
    rejected = np.mean([gt.practical_negative_p(row) < gt.ALPHA for row in d])
    if expected is not None:  # at the boundary of H0 the test rejects at its nominal rate
        assert rejected == pytest.approx(expected, abs=0.006)
    else:  # inside H0 it rejects less
        assert rejected < gt.ALPHA / 5


def test_practical_negative_test_has_power_and_edge_cases():
    rng = np.random.default_rng(4)
    d = rng.normal(-0.05, 0.02, size=(2000, 5))
    assert np.mean([gt.practical_negative_p(row) < gt.ALPHA for row in d]) > 0.95
    assert gt.practical_negative_p(np.full(5, -0.05)) == 0.0
    assert gt.practical_negative_p(np.full(5, -0.005)) == 1.0
    with pytest.raises(ValueError):
        gt.practical_negative_p(np.array([0.1]))
    with pytest.raises(ValueError):
        gt.practical_negative_p(np.array([0.1, np.nan]))


def test_choose_lr_reads_validation_only():
    rows = [{"lr": 1e-3, "val_best": 0.9, "val_tail": 0.8, "accuracy": 0.1},
            {"lr": 3e-3, "val_best": 0.9, "val_tail": 0.85, "accuracy": 0.0},
            {"lr": 1e-2, "val_best": 0.7, "val_tail": 0.7, "accuracy": 1.0}]
    assert gt.choose_lr(rows) == 3e-3  # tie on val_best: the higher tail wins; test accuracy is ignored
    rows[1]["val_tail"] = 0.8
    assert gt.choose_lr(rows) == 1e-3  # full tie: the smaller rate
    with pytest.raises(ValueError):
        gt.choose_lr([])


def test_tail_mean_and_steps():
    assert gt.tail_mean([(0, 0.1), (10, 0.5), (20, 0.7), (30, 0.9)]) == pytest.approx(0.8)
    assert gt.steps_for(100) == gt.STEPS_SMALL and gt.steps_for(200) == gt.STEPS_MEDIUM
    assert gt.steps_for(480) == gt.STEPS_LARGE
    with pytest.raises(ValueError):
        gt.steps_for(0)


def _run(target_, source, layer, arm, seed, lr, acc, tune, chosen, arch="cnn_small"):
    return {"target": target_, "role": "fit", "source": source, "arch": arch, "layer": layer, "depth": 1.0,
            "arm": arm, "seed": seed, "lr": lr, "tune": tune, "chosen": chosen, "val_best": 0.5, "val_tail": 0.5,
            "best_step": 10, "steps": 20, "budget_steps": 20, "accuracy": acc, "macro_f1": acc, "n_train": 40,
            "n_val": 10, "n_test": 50, "seconds": 1.0}


def _job_rows(target_, source, layer, arm, accs, chosen_lr=3e-3):
    grid = gt.grid(arm)
    rows = [_run(target_, source, layer, arm, 0, lr, accs[0] if lr == chosen_lr else 0.0, 1, int(lr == chosen_lr))
            for lr in grid]
    rows += [_run(target_, source, layer, arm, s, chosen_lr, accs[s], 0, 1) for s in gt.SEEDS[1:]]
    return rows


def test_done_jobs_and_dedupe_make_runs_resumable():
    rows = _job_rows("t", "zoo:cnn_small.a", "pool", "finetune", [0.5] * 5)
    assert gt.done_jobs(rows, gt.SEEDS) == {("t", "zoo:cnn_small.a", "pool", "finetune")}
    assert gt.done_jobs(rows[:-1], gt.SEEDS) == set()  # a seed missing: the job runs again
    again = gt.dedupe([dict(r) for r in rows] + [{**rows[-1], "accuracy": 0.9}])
    assert len(again) == len(rows) and max(float(r["accuracy"]) for r in again) == 0.9
    # rows at another step budget than the target's current one are history: the job is not done
    small = [{**r, "budget_steps": gt.STEPS_SMALL} for r in rows]
    assert len(gt.current(small)) == len(rows)
    assert gt.current([{**r, "budget_steps": gt.STEPS_SMALL + 1} for r in rows]) == []


def test_summarise_pairs_labels_and_cut_point_duplicates():
    taps = [{"source": "zoo:cnn_small.a", "arch": "cnn_small", "layer": ly, "depth": d, "dim": 8, "params": 1,
             "duplicate_of": dup} for ly, d, dup in (("stage1", 0.25, ""), ("stage3", 0.75, "pool"), ("pool", 1.0, ""))]
    ft = [0.60, 0.62, 0.61, 0.60, 0.59]
    sc = [0.80, 0.81, 0.79, 0.80, 0.82]
    rows = (_job_rows("t", "zoo:cnn_small.a", "pool", "finetune", ft)
            + _job_rows("t", "scratch:cnn_small", "pool", "scratch", sc)
            + _job_rows("t", "zoo:cnn_small.a", "pool", "linear", [0.4] * 5, chosen_lr=1e-2)
            + _job_rows("t", "zoo:cnn_small.a", "stage1", "finetune", [0.7] * 5))
    pairs, cut = gt.summarise(rows, taps)
    (row,) = pairs
    assert row["finetune"] == pytest.approx(np.mean(ft)) and row["scratch"] == pytest.approx(np.mean(sc))
    assert row["label"] == "negative" and row["practical_negative"] == 1 and row["linear"] == pytest.approx(0.4)
    by_layer = {r["layer"]: r for r in cut}
    assert set(by_layer) == {"stage1", "stage3", "pool"}
    assert by_layer["stage3"]["finetune"] == by_layer["pool"]["finetune"]  # filled from the tap it repeats
    assert by_layer["stage3"]["duplicate_of"] == "pool" and by_layer["pool"]["last_layer"] == 1


def test_convergence_gain_closed_form():
    curve = [(0, 0.1), (20, 0.6), (40, 0.8), (60, 0.8), (80, 0.82)]
    assert conv.last_quarter_gain(curve) == pytest.approx(0.02)
    assert conv.is_flat(curve, n_val=10)
    assert not conv.is_flat([(0, 0.1), (20, 0.5), (40, 0.6), (60, 0.6), (80, 0.9)], n_val=10)
    with pytest.raises(ValueError):
        conv.last_quarter_gain([(0, 0.1)])


def _write(path, rows, fields):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def test_evaluate_on_synthetic_csvs(tmp_path):
    """End to end on CSVs with a known answer: metric ``logme`` equals the truth, ``leep`` is its reverse."""
    from app.backbones.catalogue import Catalogue

    sources = sorted(s.id for s in Catalogue(gt.HERE.parents[1] / "models").builtins.values() if s.family == "zoo")[:6]
    taps = [{"source": s, "arch": gt.arch_of(s), "layer": ly, "depth": d, "dim": 8, "params": 1, "duplicate_of": ""}
            for s in sources for ly, d in (("a", 0.5), ("b", 1.0))]
    rng = np.random.default_rng(0)
    fit_names = [t.name for t in TARGETS if t.role == "fit"][:4]
    hold = [t.name for t in TARGETS if t.role == "holdout"][:1]
    gt_rows, scores, default, cut = [], [], [], []
    for tgt in fit_names + hold:
        acc = rng.uniform(0.2, 0.9, len(sources))
        for s, a in zip(sources, acc, strict=True):
            gt_rows.append({**{k: "" for k in gt.GT_FIELDS}, "target": tgt, "source": s, "finetune": a,
                            "scratch": 0.5, "linear": 0.3, "delta": a - 0.5, "delta_sd": 0.01, "n_seeds": 5,
                            "label": "none", "p_practical_negative": 0.5, "practical_negative": int(a < 0.3)})
            for ly in ("a", "b"):
                scores.append({"target": tgt, "source": s, "layer": ly, "metric": "logme", "value": a, "error": ""})
                scores.append({"target": tgt, "source": s, "layer": ly, "metric": "similarity.mmd",
                               "value": rng.normal(), "error": ""})
                if tgt == fit_names[0]:
                    cut.append({**{k: "" for k in gt.CUT_FIELDS}, "target": tgt, "source": s, "layer": ly,
                                "finetune": a + (0.05 if ly == "b" else 0.0)})
            scores.append({"target": tgt, "source": s, "layer": "b", "metric": "leep", "value": -a, "error": ""})
            default.append({"target": tgt, "source": s, "rank": 1, "best_layer": "a", "aggregate": -a})
    _write(tmp_path / "taps_v2.csv", taps, gt.TAP_FIELDS)
    _write(tmp_path / "ground_truth_v2.csv", gt_rows, gt.GT_FIELDS)
    _write(tmp_path / "cut_points_v2.csv", cut, gt.CUT_FIELDS)
    _write(tmp_path / "scores_v2.csv", scores, ("target", "source", "layer", "metric", "value", "error"))
    _write(tmp_path / "service_default_v2.csv", default, ("target", "source", "rank", "best_layer", "aggregate"))
    data = ev.build(tmp_path, gt.HERE.parents[1] / "models")
    assert data["fit_targets"] == sorted(fit_names) and data["holdout_targets"] == hold
    result = ev.evaluate(data)
    table = result["table"]
    assert all(table["logme"][t]["tau"] == pytest.approx(1.0) for t in fit_names + hold)
    assert all(table["leep"][t]["tau"] == pytest.approx(-1.0) for t in fit_names)
    assert all(table[ev.NEW_DEFAULT][t]["tau"] == pytest.approx(1.0) for t in fit_names)
    assert result["shipped"]["weights"] == {"logme": 1.0} and result["shipped"]["layer_rule"] == "last"
    assert (result["shipped"]["combination"], result["shipped"]["weight_method"]) in F.RECIPES
    text = ev.markdown(data, result, None, None)
    assert "Hold-out targets" in text and "Cut points" in text and "Practical negative transfer" in text
    cut_rows = ev.cut_point_table(data, result["loto"])
    assert cut_rows[0]["last_layer"] == pytest.approx(cut_rows[0]["best_cut"])
    assert cut_rows[0]["old_service_best_layer"] < cut_rows[0]["last_layer"]


def test_bootstrap_interval_covers_the_mean():
    lo, hi = ev.bootstrap_interval([0.1, 0.2, 0.3, 0.4])
    assert lo <= 0.25 <= hi
    assert ev.bootstrap_interval([0.5] * 4) == (0.5, 0.5)


@pytest.mark.slow
def test_tiny_v2_run_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(gt, "STEPS_SMALL", 4)
    monkeypatch.setattr(gt, "EVAL_EVERY", {4: 2, gt.STEPS_MEDIUM: 20, gt.STEPS_LARGE: 40})
    argv = ["--targets", "gratings_4", "--workers", "1", "--no-cut-points", "--out", str(tmp_path),
            "--sources", "zoo:cnn_small.random,zoo:mixer_tiny.gratings"]
    gt.main(argv)
    rows = gt.read_rows(tmp_path / "runs_v2.csv")
    # 2 sources x (finetune + linear) + 2 scratch architectures = 6 jobs of 3 + 4 runs
    assert len(rows) == 6 * (len(gt.LR_GRID) + len(gt.SEEDS) - 1)
    assert {r["budget_steps"] for r in rows} == {"4"} and len(gt.current(rows)) == len(rows)
    lines = (tmp_path / "curves_v2.jsonl").read_text().splitlines()
    assert len(lines) == len(rows) and json.loads(lines[0])["curve"][0][0] == 0
    pairs = gt.read_rows(tmp_path / "ground_truth_v2.csv")
    assert {r["source"] for r in pairs} == {"zoo:cnn_small.random", "zoo:mixer_tiny.gratings"}
    meta = json.loads((tmp_path / "ground_truth_v2.meta.json").read_text())
    assert meta["sessions"][0]["threads_per_worker"] == 1 and meta["sessions"][0]["torch"]
    gt.main(argv)  # nothing left to run: no row is added
    assert len(gt.read_rows(tmp_path / "runs_v2.csv")) == len(rows)
