"""The default-ranking fit (app.ranking.fit): weighted τ against scipy, the aggregation family on
closed-form toy cases, the fit and layer rule on benchmarks with known answers, the leave-one-target-out
loop never seeing its held-out target, and the versioned JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from app.ranking import fit as F

DIGEST = "a" * 64


# -- weighted τ and ranking quality -----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(8))
def test_weighted_tau_matches_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 20))
    x = rng.integers(0, 4, n).astype(float) if seed % 2 else rng.normal(size=n)
    y = np.round(rng.normal(size=n), 1 if seed % 3 else 3)
    assert F.weighted_tau(x, y) == pytest.approx(stats.weightedtau(x, y).statistic, abs=1e-12)


def test_weighted_tau_extremes_and_validation():
    x = np.arange(7.0)
    assert F.weighted_tau(x, x) == pytest.approx(1.0)
    assert F.weighted_tau(x, -x) == pytest.approx(-1.0)
    assert np.isnan(F.weighted_tau(x, np.ones(7)))
    with pytest.raises(ValueError, match="same length"):
        F.weighted_tau([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="at least 2"):
        F.weighted_tau([1.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        F.weighted_tau([1.0, np.nan], [1.0, 2.0])


def test_rank_quality_perfect_reversed_and_constant():
    truth = {"a": 0.9, "b": 0.5, "c": 0.7, "d": 0.1}
    assert F.rank_quality(truth, truth) == {"tau": pytest.approx(1.0), "pearson": pytest.approx(1.0),
                                            "top1": 1.0, "top3": 1.0}
    rev = F.rank_quality({k: -v for k, v in truth.items()}, truth)
    assert rev["tau"] == pytest.approx(-1.0) and rev["top1"] == 0.0 and rev["top3"] == 0.0  # "a" comes last
    const = F.rank_quality({k: 1.0 for k in truth}, truth)
    assert const["tau"] == 0.0 and const["pearson"] == 0.0
    # ties are broken by name, never by the truth: "a" (the best) wins a constant ranking only by its name
    assert const["top1"] == 1.0
    assert F.rank_quality({"a": 0.0, "b": 1.0, "c": 1.0, "d": 1.0}, truth)["top3"] == 0.0
    with pytest.raises(ValueError, match="misses"):
        F.rank_quality({"a": 1.0}, truth)


def test_normalised_ranks_ties_missing_and_range():
    r = F.normalised_ranks([3.0, 1.0, 2.0, 2.0, np.nan])
    assert r.tolist() == pytest.approx([1.0, 0.0, 0.5, 0.5, F.MISSING_RANK])
    assert F.normalised_ranks([5.0]).tolist() == [0.5]
    assert F.normalised_ranks([np.nan, np.nan]).tolist() == [0.5, 0.5]
    # invariant to any increasing transformation
    v = np.random.default_rng(0).normal(size=12)
    assert F.normalised_ranks(v) == pytest.approx(F.normalised_ranks(np.exp(3 * v) + 7))
    with pytest.raises(ValueError):
        F.normalised_ranks([])


def test_combine_orients_weights_and_validates():
    rows = {"a": {"up": 3.0, "down": 10.0}, "b": {"up": 2.0, "down": 20.0}, "c": {"up": 1.0, "down": 30.0}}
    d = {"up": True, "down": False}
    assert F.combine(rows, {"up": 1}, d) == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0})
    assert F.combine(rows, {"down": 5}, d) == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0})
    mixed = F.combine({"a": {"up": 1.0, "down": 1.0}, "b": {"up": 2.0, "down": 2.0}}, {"up": 3, "down": 1}, d)
    assert mixed == pytest.approx({"a": 0.25, "b": 0.75})
    with pytest.raises(ValueError, match="non-negative"):
        F.combine(rows, {"up": -1}, d)
    with pytest.raises(ValueError, match="positive sum"):
        F.combine(rows, {"up": 0}, d)
    with pytest.raises(ValueError, match="direction"):
        F.combine(rows, {"other": 1}, d)


# -- toy benchmarks ---------------------------------------------------------------------------------------------
def _bench(n_targets=5, n_sources=8, seed=0, cut_targets=(), early_better=False, noise_on=None):
    """Metric ``good`` tracks the truth on every target, ``bad`` is noise, ``lower`` is −truth (lower is
    better, so it is good too once oriented). Three taps per source; with ``early_better`` the cut-point
    truth peaks at the first tap and ``good`` says so there."""
    rng = np.random.default_rng(seed)
    sources = [f"s{i}" for i in range(n_sources)]
    layers = {s: ["l1", "l2", "l3"] for s in sources}
    scores, truth, cut = {}, {}, {}
    for t in range(n_targets):
        tgt = f"t{t}"
        acc = rng.uniform(0.3, 0.9, n_sources)
        for i, s in enumerate(sources):
            truth[(tgt, s)] = float(acc[i])
            for j, ly in enumerate(layers[s]):
                bonus = (0.2 if j == 0 else 0.0) if early_better else (0.1 * j)
                good = acc[i] + bonus
                if noise_on == tgt:
                    good = rng.normal()
                scores[(tgt, s, ly)] = {"good": good, "bad": rng.normal(), "lower": -good}
                if tgt in cut_targets:
                    cut[(tgt, s, ly)] = float(acc[i] + bonus)
    return F.Benchmark(scores=scores, directions={"good": True, "bad": True, "lower": False}, layers=layers,
                       truth=truth, cut_truth=cut)


def test_fit_weights_finds_the_informative_metric():
    bench = _bench()
    w = F.fit_weights(bench, bench.targets, candidates=["bad", "good"])
    assert w == {"good": 1.0}
    assert F.target_quality(bench, "t0", w)["tau"] == pytest.approx(1.0)
    # a ranking by "lower" (lower is better) is as good once oriented
    assert F.fit_weights(bench, bench.targets, candidates=["bad", "lower"]) == {"lower": 1.0}


def test_fit_weights_validates():
    bench = _bench()
    with pytest.raises(ValueError, match="at least one"):
        F.fit_weights(bench, [])
    with pytest.raises(ValueError, match="without ground truth"):
        F.fit_weights(bench, ["nope"])
    with pytest.raises(ValueError, match="max_units"):
        F.fit_weights(bench, bench.targets, max_units=0)


def test_layer_rule_best_when_early_taps_win_and_last_otherwise():
    early = _bench(cut_targets=("t0", "t1"), early_better=True)
    assert F.fit_layer_rule(early, early.targets, {"good": 1.0}) == "best"
    q = F.layer_rule_quality(early, "t0", {"good": 1.0}, "best")
    assert q["regret"] == pytest.approx(0.0) and q["rule"] == pytest.approx(q["last"] + 0.2)
    # cut truth rises with depth: the best tap is the last one, no rule is strictly better than "last"
    late = _bench(cut_targets=("t0", "t1"))
    assert F.fit_layer_rule(late, late.targets, {"good": 1.0}) == "last"
    # no cut-point truth at all: "last"
    assert F.fit_layer_rule(_bench(), ["t0"], {"good": 1.0}) == "last"


def test_loto_never_sees_the_held_out_target():
    bench = _bench(n_targets=5, noise_on="t2")
    loto = F.leave_one_target_out(bench, candidates=["bad", "good"])
    # on t2 "good" is noise; fitting on the other targets still chooses "good" — t2 was not looked at
    assert loto["per_target"]["t2"]["weights"] == {"good": 1.0}
    assert "t2" not in loto["per_target"]["t2"]["fitted_on"]
    # changing the held-out target's truth (and its scores) never changes the weights fitted for it
    shuffled = dict(bench.truth)
    rng = np.random.default_rng(9)
    for s in bench.sources("t2"):
        shuffled[("t2", s)] = float(rng.uniform())
    other = F.Benchmark(bench.scores, bench.directions, bench.layers, shuffled, bench.cut_truth)
    loto2 = F.leave_one_target_out(other, candidates=["bad", "good"])
    assert loto2["per_target"]["t2"]["weights"] == loto["per_target"]["t2"]["weights"]
    assert loto2["per_target"]["t2"]["layer_rule"] == loto["per_target"]["t2"]["layer_rule"]


def test_loto_instrumented_fit_calls_exclude_the_held_out(monkeypatch):
    bench = _bench(n_targets=4, cut_targets=("t1",))
    seen: list[tuple[str, tuple[str, ...]]] = []
    real_fit, real_rule = F.fit_weights, F.fit_layer_rule

    def spy_fit(b, targets, *a, **k):
        seen.append(("weights", tuple(targets)))
        return real_fit(b, targets, *a, **k)

    def spy_rule(b, targets, *a, **k):
        seen.append(("rule", tuple(targets)))
        return real_rule(b, targets, *a, **k)

    monkeypatch.setattr(F, "fit_weights", spy_fit)
    monkeypatch.setattr(F, "fit_layer_rule", spy_rule)
    F.leave_one_target_out(bench, candidates=["bad", "good"])
    folds = [(kind, tuple(sorted(set(bench.targets) - set(t)))) for kind, t in seen]
    assert all(len(f) >= 1 for _, f in folds)  # no fitting call sees every target ...
    for kind in ("weights", "rule"):  # ... the outer folds miss exactly one, each target once per kind
        outer = sorted(f[0] for k, f in folds if k == kind and len(f) == 1)
        assert outer == bench.targets
    # the inner folds (choosing the combination family) miss the outer held-out target and one more
    assert any(len(f) == 2 for _, f in folds)


# -- the stored default ----------------------------------------------------------------------------------------
def test_fit_default_json_round_trip_and_versions(tmp_path):
    bench = _bench(cut_targets=("t0",))
    default = F.fit_default(bench, ground_truth_digest=DIGEST, version=1, candidates=["bad", "good"])
    assert default.weights == {"good": 1.0} and default.metrics == ("good",)
    assert default.fitted_on == tuple(bench.targets) and set(default.loto["per_target"]) == set(bench.targets)
    path = F.write_default(default, tmp_path)
    assert path.name == "classification-v1.json"
    data = json.loads(path.read_text())
    assert {"version", "metrics", "weights", "layer_rule", "ground_truth_digest", "fitted_on", "loto"} <= set(data)
    again = F.load_default("classification", directory=tmp_path)
    assert again == default
    with pytest.raises(FileExistsError):
        F.write_default(default, tmp_path)
    v2 = F.FittedDefault(**{**default.__dict__, "version": 2, "weights": {"good": 0.5, "bad": 0.5},
                            "metrics": ("bad", "good"), "directions": {"good": True, "bad": True}})
    F.write_default(v2, tmp_path)
    assert F.versions("classification", tmp_path) == [1, 2]
    assert F.load_default("classification", directory=tmp_path).version == 2
    assert F.load_default("classification", version=1, directory=tmp_path) == default
    with pytest.raises(FileNotFoundError):
        F.load_default("regression", directory=tmp_path)
    # the default ranks a target it was given as plain scores
    ranked = again.rank({(s, ly): v for (t, s, ly), v in bench.scores.items() if t == "t3"},
                        {s: bench.layers[s] for s in bench.sources("t3")})
    assert F.rank_quality({s: v for s, (_, v) in ranked.items()},
                          {s: bench.truth[("t3", s)] for s in bench.sources("t3")})["tau"] == pytest.approx(1.0)


@pytest.mark.parametrize("change, match", [
    ({"version": 0}, "version"),
    ({"weights": {"good": 0.7}}, "sum to 1"),
    ({"metrics": ("bad",)}, "sorted names"),
    ({"layer_rule": "first"}, "layer rule"),
    ({"ground_truth_digest": "xyz"}, "sha256"),
    ({"fitted_on": ()}, "fitted_on"),
    ({"directions": {}}, "direction"),
])
def test_fitted_default_validates(change, match):
    base = dict(version=1, task_type="classification", metrics=("good",), weights={"good": 1.0},
                directions={"good": True}, layer_rule="last", ground_truth_digest=DIGEST, fitted_on=("t0",))
    with pytest.raises(ValueError, match=match):
        F.FittedDefault(**{**base, **change})


def test_from_json_rejects_unknown_format_and_missing_keys():
    with pytest.raises(ValueError, match="format"):
        F.FittedDefault.from_json({"format": 99})
    with pytest.raises(ValueError, match="lacks"):
        F.FittedDefault.from_json({"format": F.FORMAT_VERSION, "version": 1})


# -- the label-free share --------------------------------------------------------------------------------------
def _with_label_free(bench, helpful, seed=5):
    """``bench`` plus a label-free metric ``free``: the truth's residual after ``good`` (so mixing it in
    corrects ``good``) when ``helpful``, noise otherwise; ``good`` made coarse (ties broken by the truth
    only through ``free``)."""
    rng = np.random.default_rng(seed)
    scores = {}
    for (tgt, src, ly), vals in bench.scores.items():
        acc = bench.truth[(tgt, src)]
        coarse = float(np.floor(acc * 4))  # four bins: "good" cannot order sources inside a bin
        free = acc if helpful else float(rng.normal())
        scores[(tgt, src, ly)] = {**vals, "good": coarse, "free": free}
    return F.Benchmark(scores, {**bench.directions, "free": True}, bench.layers, bench.truth, bench.cut_truth,
                       label_free=frozenset({"free"}))


def test_mix_label_free_scales_the_label_aware_weights():
    assert F.mix_label_free({"a": 2.0, "b": 2.0}, "e", 0.25) == pytest.approx({"a": 0.375, "b": 0.375, "e": 0.25})
    assert F.mix_label_free({"a": 1.0}, "e", 0.0) == {"a": 1.0}
    with pytest.raises(ValueError, match="share"):
        F.mix_label_free({"a": 1.0}, "e", 1.0)


def test_a_label_free_metric_corrects_but_never_leads():
    helpful = _with_label_free(_bench(n_targets=6, n_sources=12), helpful=True)
    f = F.fit_all(helpful, helpful.targets, ["bad", "free", "good"])
    # on its own "free" is the perfect ranker, yet it gets at most the largest share and "good" leads; the
    # smallest share already orders the sources inside "good"'s bins, so the larger one gains nothing
    share = min(s for s in F.LABEL_FREE_SHARES if s > 0)
    assert f["label_free"]["metric"] == "free" and f["label_free"]["share"] == share
    assert f["weights"]["free"] == pytest.approx(share) and f["weights"]["good"] > 0.5
    assert f["label_free"]["tau"][f"free@{share:g}"] > f["label_free"]["tau"]["none"] + 0.005
    # a label-free metric that is noise gets nothing
    noise = _with_label_free(_bench(n_targets=6, n_sources=12), helpful=False)
    g = F.fit_all(noise, noise.targets, ["bad", "free", "good"])
    assert "free" not in g["weights"] and g["label_free"] == {**g["label_free"], "metric": None, "share": 0.0}
    # with only label-free candidates there is nothing to lead: refused
    with pytest.raises(ValueError, match="labels"):
        F.fit_all(helpful, helpful.targets, ["free"])


def test_label_free_shares_stay_below_a_third():
    bench = _with_label_free(_bench(), helpful=True)
    for bad in ((0.1, 0.2), (0.0, 0.4), ()):
        with pytest.raises(ValueError, match="1/3"):
            F.fit_label_free_share(bench, bench.targets, {"good": 1.0}, ["free"], shares=bad)
    assert all(0.0 <= s < 1 / 3 for s in F.LABEL_FREE_SHARES) and F.LABEL_FREE_SHARES[0] == 0.0


def test_at_the_largest_share_a_label_free_metric_cannot_reverse_three_agreeing_candidates():
    # label-aware ranks 1, 0.5, 0 (the README's strong / weak / none); the label-free metric says the opposite
    rows = {"strong": {"aware": 3.0, "free": 0.0}, "weak": {"aware": 2.0, "free": 1.0},
            "none": {"aware": 1.0, "free": 2.0}}
    w = F.mix_label_free({"aware": 1.0}, "free", max(F.LABEL_FREE_SHARES))
    combined = F.combine(rows, w, {"aware": True, "free": True})
    assert combined["strong"] > combined["weak"] > combined["none"]


def test_label_free_metrics_are_the_ones_that_read_no_target_labels():
    from app.transferability import METRICS, label_free_metrics

    free = label_free_metrics()
    assert "etran_energy" in free and "logme" not in free and "otdd" not in free and "otce" not in free
    for m in free:
        assert not {"labels", "labels_or_targets", "target_labels"} & set(METRICS[m].inputs)


@pytest.mark.parametrize("rule", F.LAYER_RULES)
@pytest.mark.parametrize("family", F.COMBINATIONS)
def test_predict_from_cached_columns_equals_choose_layers_exactly(rule, family):
    bench = _bench(n_targets=3, n_sources=9, seed=11)
    rng = np.random.default_rng(2)
    for vals in bench.scores.values():  # ties and a missing value on some rows
        vals["good"] = float(np.round(vals["good"], 1))
        if rng.random() < 0.1:
            vals.pop("bad")
    for weights in ({"good": 1.0}, {"good": 0.5, "bad": 0.3, "lower": 0.2}, {"bad": 2.0, "lower": 1.0}):
        for tgt in bench.targets:
            slow = F.choose_layers(bench.target_scores(tgt), bench.target_layers(tgt), weights, bench.directions,
                                   rule, family)
            assert F.predict(bench, tgt, weights, rule, family) == slow  # equal floats, same taps
    with pytest.raises(ValueError, match="direction"):
        F.predict(bench, "t0", {"nope": 1.0})
    with pytest.raises(ValueError, match="layer rule"):
        F.predict(bench, "t0", {"good": 1.0}, "deepest")


def test_nnls_drops_a_share_too_small_to_matter(monkeypatch):
    bench = _bench(n_targets=5, n_sources=10, seed=5)
    rng = np.random.default_rng(1)
    for (t, s, _), vals in bench.scores.items():  # "tiny" carries a little signal under a lot of noise
        vals["good"] = bench.truth[(t, s)] + 0.1 * rng.normal()
        vals["tiny"] = bench.truth[(t, s)] + 6.0 * rng.normal()
    bench = F.Benchmark(bench.scores, {**bench.directions, "tiny": True}, bench.layers, bench.truth)
    kw = {"method": "nnls", "combination": "zscore"}
    assert F.fit_weights(bench, bench.targets, ["bad", "good", "tiny"], **kw) == {"good": 1.0}
    monkeypatch.setattr(F, "MIN_WEIGHT", 0.0)  # without the floor nnls keeps a sliver of it
    sliver = F.fit_weights(bench, bench.targets, ["bad", "good", "tiny"], **kw)
    assert 0 < sliver["tiny"] < 0.05 and sliver["good"] == pytest.approx(1 - sliver["tiny"])
