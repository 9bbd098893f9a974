"""The transfer benchmark's pure parts: targets are disjoint from sources, the derived labels, the ranking
quality measures, and a tiny end-to-end ground-truth run through the probe runner."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from app.zoo.domains import _digits_upscaled, digits_pool
from app.zoo.images import to_uint8
from bench.transfer.evaluate import rank_quality, verdict_rows
from bench.transfer.ground_truth import main as ground_truth_main
from bench.transfer.ground_truth import paired_label, summarise
from bench.transfer.targets import TARGETS, target

V1_TARGETS = ("digits_10shot", "shapes_new", "shapes_small", "gratings_4", "textures", "counting")


def test_at_least_six_few_shot_targets():
    # the v1 targets stay few-shot; ground truth v2 adds targets with more labelled data (test_transfer_bench_v2)
    assert {t.name for t in TARGETS} >= set(V1_TARGETS)
    for t in TARGETS:
        if t.name in V1_TARGETS:
            assert 10 <= t.shots <= 50, t
        else:
            assert 10 <= t.shots <= 150, t


def test_digit_targets_only_hold_target_pool_images():
    ink, _ = _digits_upscaled()
    source_glyphs = {to_uint8(ink[i]).tobytes() for i in digits_pool("source")}
    xtr, ytr, xte, yte = target("digits_10shot").load()
    assert len(xtr) == 100 and np.bincount(ytr).tolist() == [10] * 10 and len(xte) + len(xtr) == 697
    # white-on-black digits: the red channel is the glyph; none of them is a source-pool glyph
    for img in np.concatenate([xtr, xte]):
        assert np.ascontiguousarray(img[..., 0]).tobytes() not in source_glyphs


def test_target_splits_are_seeded_and_disjoint():
    a = target("shapes_small").load()
    b = target("shapes_small").load()
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    train = {img.tobytes() for img in a[0]}
    assert not train & {img.tobytes() for img in a[2]}


def test_paired_label():
    scratch = np.array([0.80, 0.82, 0.81, 0.79, 0.80])
    assert paired_label(scratch - np.array([0.05, 0.04, 0.06, 0.05, 0.05]), scratch)["label"] == "negative"
    assert paired_label(scratch + 0.10 + np.array([0, 0.01, -0.01, 0.02, 0]), scratch)["label"] == "strong_positive"
    assert paired_label(scratch + np.array([0.01, -0.01, 0.0, 0.02, -0.02]), scratch)["label"] == "none"
    same = paired_label(scratch, scratch)
    assert same["label"] == "none" and same["delta"] == 0.0


def test_rank_quality_and_verdicts():
    truth = {"a": 0.9, "b": 0.5, "c": 0.7, "d": 0.1}
    perfect = rank_quality({"a": 4, "b": 2, "c": 3, "d": 1}, truth)
    assert perfect["tau"] == pytest.approx(1.0) and perfect["pearson"] > 0.9 and perfect["top1"] == 1.0
    reversed_ = rank_quality({"a": 1, "b": 3, "c": 2, "d": 4}, truth)
    assert reversed_["tau"] == pytest.approx(-1.0) and reversed_["top1"] == 0.0 and reversed_["top3"] == 0.0
    v = verdict_rows({("t", "a"): "negative_transfer", ("t", "b"): "positive", ("t", "c"): "negative_transfer"},
                     {("t", "a"): "negative", ("t", "b"): "negative", ("t", "c"): "none"})
    assert v == {"pairs": 3, "precision": 0.5, "recall": 0.5}


@pytest.mark.slow
def test_tiny_ground_truth_run(tmp_path):
    ground_truth_main(["--seeds", "2", "--steps", "4", "--targets", "gratings_4", "--workers", "1",
                       "--sources", "zoo:cnn_small.random,zoo:mixer_tiny.gratings", "--out", str(tmp_path)])
    with open(tmp_path / "runs.csv") as fh:
        runs = list(csv.DictReader(fh))
    assert {r["arm"] for r in runs} == {"finetune", "linear", "scratch"} and len(runs) == 12
    rows = summarise(runs)
    assert {r["source"] for r in rows} == {"zoo:cnn_small.random", "zoo:mixer_tiny.gratings"}
    assert all(r["n_seeds"] == 2 and r["label"] in ("negative", "positive", "strong_positive", "none") for r in rows)
