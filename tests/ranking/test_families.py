"""The fitted default's two combination families (normalised ranks, clipped z-scores): closed-form toy
cases, invariances, the aggregate methods the rank stage uses agreeing with the fit's ``combine``, the
family chosen on held-out folds, and defaults stored across several directories."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from app.ranking import fit as F
from tests.ranking.test_fit import DIGEST, _bench

A = importlib.import_module("app.ranking.aggregate")  # the package exports a function of the same name


def test_zscores_closed_form_clip_missing_and_constant():
    z = A.zscores([1.0, 2.0, 3.0])
    assert z == pytest.approx([-np.sqrt(1.5), 0.0, np.sqrt(1.5)])
    assert A.zscores([0.0] * 9 + [100.0]).max() == pytest.approx(3.0)  # an outlier is clipped to +3
    assert A.zscores([1.0, np.nan, 3.0]).tolist() == pytest.approx([-1.0, 0.0, 1.0])  # missing = the mean
    assert A.zscores([4.0, 4.0, 4.0]).tolist() == [0.0, 0.0, 0.0]
    assert A.zscores([np.nan, 2.0]).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="non-empty"):
        A.zscores([])
    with pytest.raises(ValueError, match="clip"):
        A.zscores([1.0, 2.0], clip=0)


def test_zscores_affine_invariance_and_rank_monotone_invariance():
    rng = np.random.default_rng(0)
    v = rng.normal(size=12)
    assert A.zscores(3.0 * v + 7.0) == pytest.approx(A.zscores(v))
    assert A.normalised_ranks(np.exp(v)) == pytest.approx(A.normalised_ranks(v))
    with pytest.raises(ValueError, match="unknown combination"):
        A.family_normalise(v, "softmax")


@pytest.mark.parametrize("family", A.COMBINATIONS)
def test_aggregate_family_methods_equal_the_fit_combine(family):
    rng = np.random.default_rng(1)
    names = [f"s{i}" for i in range(7)]
    cols = {"up": rng.normal(size=7), "down": rng.normal(size=7)}
    cols["up"][2] = np.nan
    directions = {"up": True, "down": False}
    weights = {"up": 0.25, "down": 0.75}
    result = A.aggregate(cols, directions, method=f"{family}_weighted", weights=weights)
    rows = {n: {m: float(cols[m][i]) for m in cols} for i, n in enumerate(names)}
    expected = F.combine(rows, weights, directions, family)
    assert result.score == pytest.approx([expected[n] for n in names])
    # the reported normalised column is the family's, oriented: higher is better
    assert result.normalised["down"] == pytest.approx(A.family_normalise(-cols["down"], family))


def test_zscore_family_keeps_the_gap_a_rank_throws_away():
    # metric "m" puts s0 far ahead; metric "n" puts s1 barely ahead of s0: ranks tie s0 and s1, z-scores do not
    rows = {"s0": {"m": 10.0, "n": 1.0}, "s1": {"m": 1.0, "n": 1.1}, "s2": {"m": 0.0, "n": 0.0}}
    d = {"m": True, "n": True}
    ranked = F.combine(rows, {"m": 1, "n": 1}, d, "rank")
    zs = F.combine(rows, {"m": 1, "n": 1}, d, "zscore")
    assert ranked["s0"] == pytest.approx(ranked["s1"])
    assert zs["s0"] > zs["s1"] > zs["s2"]


def test_fit_recipe_chooses_on_held_out_folds():
    bench = _bench(n_targets=5)
    (fam, method), inner = F.fit_recipe(bench, bench.targets, ["bad", "good"])
    assert set(inner) == {f"{c}/{m}" for c, m in F.RECIPES} and (fam, method) in F.RECIPES
    assert inner[f"{fam}/{method}"] == max(inner.values())
    # too few targets for an inner loop, or one recipe offered: no choice is made from data
    assert F.fit_recipe(bench, bench.targets[:2], ["good"]) == (F.RECIPES[0], {})
    assert F.fit_recipe(bench, bench.targets, ["good"], recipes=[("zscore", "nnls")]) == (("zscore", "nnls"), {})
    with pytest.raises(ValueError, match="recipes"):
        F.fit_recipe(bench, bench.targets, ["good"], recipes=[("softmax", "nnls")])


@pytest.mark.parametrize("seed", range(12))
def test_nnls_matches_scipy(seed):
    from scipy.optimize import nnls as scipy_nnls

    rng = np.random.default_rng(seed)
    m, n = int(rng.integers(5, 60)), int(rng.integers(1, 12))
    a = rng.normal(size=(m, n))
    if seed % 3 == 0:
        a[:, 0] = a[:, 1] if n > 1 else a[:, 0]  # collinear columns
    b = rng.normal(size=m) + (a @ np.abs(rng.normal(size=n)) if seed % 2 else 0)
    x = F.nnls(a, b)
    ref, _ = scipy_nnls(a, b)
    assert np.all(x >= 0)
    assert np.linalg.norm(a @ x - b) == pytest.approx(np.linalg.norm(a @ ref - b), rel=1e-7, abs=1e-9)
    with pytest.raises(ValueError, match="matrix"):
        F.nnls(a, b[:-1])


def test_nnls_weights_find_the_informative_metric_and_the_pooled_fit():
    bench = _bench(n_targets=4)
    w = F.fit_weights(bench, bench.targets, ["bad", "good", "lower"], method="nnls", combination="zscore")
    assert sum(w.values()) == pytest.approx(1.0) and w.get("bad", 0.0) < 0.1
    assert set(w) & {"good", "lower"}
    with pytest.raises(ValueError, match="weight method"):
        F.fit_weights(bench, bench.targets, ["good"], method="lasso")
    with pytest.raises(ValueError, match="ridge"):
        F.fit_weights_nnls(bench, bench.targets, ["good"], ridge=-1)


def test_fitted_default_stores_its_family_and_reads_format_1(tmp_path):
    bench = _bench(n_targets=4)
    default = F.fit_default(bench, ground_truth_digest=DIGEST, version=3, candidates=["bad", "good"])
    assert default.combination in A.COMBINATIONS and default.aggregation == f"{default.combination}_weighted"
    assert default.name == "classification-v3"
    path = F.write_default(default, tmp_path)
    data = json.loads(path.read_text())
    assert data["format"] == 2 and data["combination"] == default.combination
    assert F.load_default(directory=tmp_path) == default
    old = {**data, "format": 1, "version": 1}
    old.pop("combination")
    (tmp_path / "classification-v1.json").write_text(json.dumps(old))
    assert F.load_default(version=1, directory=tmp_path).combination == "rank"
    with pytest.raises(ValueError, match="format"):
        F.FittedDefault.from_json({**data, "format": 9})
    with pytest.raises(ValueError, match="combination"):
        F.FittedDefault(**{**default.__dict__, "combination": "softmax"})


def test_newest_default_over_several_directories_and_clashes(tmp_path):
    a, b = tmp_path / "builtin", tmp_path / "deployment"
    bench = _bench(n_targets=3)
    one = F.fit_default(bench, ground_truth_digest=DIGEST, version=1, candidates=["good"])
    F.write_default(one, a)
    assert F.load_default(directory=[a, b]).version == 1  # a missing directory is empty
    two = F.FittedDefault(**{**one.__dict__, "version": 2})
    F.write_default(two, b)
    assert F.versions("classification", [a, b]) == [1, 2]
    assert F.load_default(directory=[a, b]) == two
    digest = F.file_digest("classification", 2, [a, b])
    assert len(digest) == 64 and digest == F.file_digest("classification", 2, b)
    # the same version stored twice must be the same file
    (b / "classification-v1.json").write_text("{}")
    with pytest.raises(ValueError, match="differs"):
        F.load_default(directory=[a, b])
    with pytest.raises(FileNotFoundError):
        F.file_digest("classification", 7, [a, b])
