"""Scoring the verdict rule against ground truth on an independent replication."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from app.probes.evaluation import score_verdict_rule
from app.probes.sequential import SequentialDesign
from tests.kits import REPO

GT = REPO / "bench" / "transfer" / "ground_truth.csv"


def _replication(truth, sds, seeds=range(100, 120), seed=0):
    rng = np.random.default_rng(seed)
    return {p: {s: truth[p]["delta"] + sds[p] * rng.standard_normal() for s in seeds} for p in truth}


def test_scores_a_synthetic_benchmark():
    truth = {("t1", "neg"): {"label": "negative", "delta": -0.12},
             ("t1", "tiny_neg"): {"label": "negative", "delta": -0.004},  # significant but not practical
             ("t1", "pos"): {"label": "strong_positive", "delta": 0.25},
             ("t1", "none"): {"label": "none", "delta": 0.0},
             ("t2", "neg"): {"label": "negative", "delta": -0.3},
             ("t2", "pos"): {"label": "positive", "delta": 0.05}}
    sds = {("t1", "neg"): 0.02, ("t1", "tiny_neg"): 0.001, ("t1", "pos"): 0.05, ("t1", "none"): 0.05,
           ("t2", "neg"): 0.05, ("t2", "pos"): 0.01}
    out = score_verdict_rule(_replication(truth, sds), truth)
    assert out["pairs"] == 6 and out["practical_negative_pairs"] == 2
    detail = out["pairs_detail"]
    assert detail["t1|neg"]["verdict"] == detail["t2|neg"]["verdict"] == "negative_transfer"
    assert detail["t1|pos"]["verdict"] == "positive" and detail["t1|none"]["verdict"] == "inconclusive"
    assert detail["t1|tiny_neg"]["verdict"] != "negative_transfer"  # within δ: never a practical claim
    assert out["precision"] == out["recall"] == 1.0 and out["positive_on_negative"] == []
    assert out["inconclusive_share"] == pytest.approx(sum(v["verdict"] == "inconclusive" for v in detail.values()) / 6)
    assert out["mean_seeds"] == pytest.approx(np.mean([v["seeds"] for v in detail.values()]))
    assert detail["t1|neg"]["seeds"] <= detail["t1|none"]["seeds"]  # easy pairs stop early
    # a shorter replication ends the noisy pair when its seeds run out
    short = score_verdict_rule(_replication(truth, sds, seeds=range(100, 107)), truth,
                               design=SequentialDesign(futility_ratio=None))
    assert short["pairs_detail"]["t1|none"]["seeds"] == 7 and short["pairs_detail"]["t1|none"]["stop"] == "max_seeds"


def test_one_holm_family_per_job():
    truth = {(f"t|{i}", "s"): {"label": "none", "delta": 0.0} for i in range(3)}
    rep = _replication(truth, dict.fromkeys(truth, 0.05))
    jobs = {"one": list(truth)}
    a = score_verdict_rule(rep, truth, jobs=jobs)
    b = score_verdict_rule(rep, truth)
    assert a["pairs"] == b["pairs"] == 3 and math.isnan(a["precision"]) and math.isnan(a["recall"])


def test_ground_truth_runs_are_not_a_replication():
    with open(GT.parent / "runs.csv") as fh:
        rows = list(csv.DictReader(fh))
    by = {}
    for r in rows:
        by.setdefault((r["target"], r["source"]), {}).setdefault(int(r["seed"]), {})[r["arm"]] = float(r["accuracy"])
    scratch = {}
    for (t, s), seeds in by.items():
        for seed, arms in seeds.items():
            if "scratch" in arms:
                scratch[(t, s, seed)] = arms["scratch"]
    with open(GT) as fh:
        truth = {(r["target"], r["source"]): {"label": r["label"], "delta": float(r["delta"])}
                 for r in csv.DictReader(fh)}
    own = {p: {seed: arms["finetune"] - scratch.get((p[0], p[1], seed), arms.get("scratch", math.nan))
               for seed, arms in seeds.items() if "finetune" in arms} for p, seeds in by.items()}
    with pytest.raises(ValueError, match="independent replication"):
        score_verdict_rule({p: v for p, v in own.items() if p in truth}, truth)


def test_inputs_are_validated():
    truth = {("t", "s"): {"label": "none", "delta": 0.0}}
    with pytest.raises(ValueError, match="no pairs"):
        score_verdict_rule({}, truth)
    with pytest.raises(ValueError, match="without a ground-truth label"):
        score_verdict_rule({("t", "x"): {100: 0.1}}, truth)
    with pytest.raises(ValueError, match="SequentialDesign"):
        score_verdict_rule({("t", "s"): {100: 0.1}}, truth, design={"alpha": 0.05})
    with pytest.raises(ValueError, match="lacks"):
        score_verdict_rule({("t", "s"): {100: 0.1}}, truth, jobs={"j": [("t", "y")]})
    assert SequentialDesign().max_seeds == 20


def test_practical_negative_flag_decides_when_given():
    # ground truth v2 marks practical negatives with its own test; the flag wins over label and Δ
    truth = {("t", "flagged"): {"label": "none", "delta": -0.05, "practical_negative": 1},
             ("t", "labelled"): {"label": "negative", "delta": -0.05, "practical_negative": 0},
             ("t", "old"): {"label": "negative", "delta": -0.05}}
    rep = _replication(truth, dict.fromkeys(truth, 0.005))
    out = score_verdict_rule(rep, truth)
    assert out["practical_negative_pairs"] == 2  # "flagged" by its flag, "old" by label and Δ
    assert out["true_positives"] == 2 and out["false_positives"] == 1 and out["precision"] == pytest.approx(2 / 3)
