"""Rank aggregation, layer choice, bootstrap intervals and greedy subsets against slow references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from app.ranking import (
    aggregate,
    bootstrap_rank_intervals,
    choose_layers,
    greedy_subset,
    normalise,
    rank_with_ties,
)


def slow_ranks(values):
    """Rank 1 = largest; ties get the average of the positions they span; NaN last."""
    vals = [(-np.inf if not np.isfinite(v) else v) for v in values]
    out = []
    for v in vals:
        greater = sum(1 for w in vals if w > v)
        equal = sum(1 for w in vals if w == v)
        out.append(greater + (equal + 1) / 2)
    return np.array(out)


@pytest.mark.parametrize("values", [[3, 1, 2], [1, 1, 2, 0], [5.0, np.nan, 5.0, 1.0], [7.0]])
def test_rank_with_ties_matches_slow_reference(values):
    np.testing.assert_array_equal(rank_with_ties(values), slow_ranks(values))


def test_normalise_direction_constant_and_nan():
    np.testing.assert_allclose(normalise([1, 2, 3]), [0, 0.5, 1])
    np.testing.assert_allclose(normalise([1, 2, 3], higher_is_better=False), [1, 0.5, 0])
    np.testing.assert_allclose(normalise([4, 4]), [0.5, 0.5])
    out = normalise([1, np.nan, 3])
    assert np.isnan(out[1]) and out[0] == 0 and out[2] == 1


def test_rank_mean_is_mean_of_metric_ranks_and_respects_direction():
    scores = {"up": [0.1, 0.5, 0.9], "down": [3.0, 2.0, 1.0]}  # both say candidate 2 is best
    result = aggregate(scores, {"up": True, "down": False})
    np.testing.assert_array_equal(result.rank, [3, 2, 1])
    scores = {"up": [0.1, 0.5, 0.9], "down": [1.0, 2.0, 3.0]}  # they disagree: 0 and 2 tie
    result = aggregate(scores, {"up": True, "down": False})
    assert result.rank[0] == result.rank[2] and result.rank[1] == result.rank[0]


def test_rank_mean_invariant_to_monotone_rescaling():
    rng = np.random.default_rng(0)
    scores = {"a": rng.normal(size=6), "b": rng.normal(size=6)}
    base = aggregate(scores, {"a": True, "b": True}).rank
    scaled = aggregate({"a": 100 * scores["a"] - 7, "b": np.exp(scores["b"])}, {"a": True, "b": True}).rank
    np.testing.assert_array_equal(base, scaled)


def test_weighted_aggregation_and_errors():
    scores = {"a": [0.0, 1.0], "b": [1.0, 0.0]}
    r = aggregate(scores, {"a": True, "b": True}, method="weighted", weights={"a": 3, "b": 1})
    np.testing.assert_allclose(r.score, [0.25, 0.75])
    with pytest.raises(ValueError, match="weights"):
        aggregate(scores, {"a": True, "b": True}, method="weighted")
    with pytest.raises(ValueError, match="not computed"):
        aggregate(scores, {"a": True, "b": True}, method="weighted", weights={"c": 1})
    with pytest.raises(ValueError, match="one value per candidate"):
        aggregate({"a": [1, 2], "b": [1]}, {"a": True, "b": True})
    with pytest.raises(ValueError, match="aggregation must be"):
        aggregate(scores, {"a": True, "b": True}, method="median")


def test_choose_layers_modes():
    per_layer = {"s1": {"m": 0.1, "n": 0.2}, "s2": {"m": 0.9, "n": 0.8}, "s3": {"m": 0.5, "n": 0.4}}
    dirs = {"m": True, "n": True}
    assert choose_layers(per_layer, dirs, mode="best")[0] == "s2"
    assert choose_layers(per_layer, dirs, mode="last", layer_order=["s1", "s2", "s3"])[0] == "s3"
    layer, values, per = choose_layers(per_layer, dirs, mode="mean")
    assert layer == "mean" and values["m"] == pytest.approx(0.5) and set(per) == {"s1", "s2", "s3"}
    with pytest.raises(ValueError, match="layer mode"):
        choose_layers(per_layer, dirs, mode="first")


def test_bootstrap_intervals_cover_a_clear_winner_and_are_deterministic():
    rng = np.random.default_rng(1)
    n = 120
    labels = np.repeat([0, 1, 2], n // 3)
    quality = {"good": 3.0, "mid": 1.0, "bad": 0.2}
    feats = {c: labels[:, None] * q + rng.normal(size=(n, 4)) for c, q in quality.items()}

    def metric_fn(c, m, idx):
        f, y = feats[c][idx], labels[idx]
        means = np.stack([f[y == k].mean(0) for k in np.unique(y)])
        return float(means.var(0).sum() / f.var(0).sum())

    kwargs = dict(n_samples=n, labels=labels, n_boot=40, random_state=3)
    out = bootstrap_rank_intervals(list(quality), metric_fn, ["sep"], {"sep": True}, **kwargs)
    assert out["good"][:2] == (1.0, 1.0) and out["good"][2] == 1.0
    assert out["bad"][0] >= 2.5
    assert out == bootstrap_rank_intervals(list(quality), metric_fn, ["sep"], {"sep": True}, **kwargs)


def test_greedy_subset_against_exhaustive_search():
    rng = np.random.default_rng(2)
    blocks = {name: rng.normal(size=(50, 2)) for name in "abcd"}

    def score(x):  # a deterministic, additive-ish score of the concatenation
        return float(np.abs(x).sum())

    steps = greedy_subset(blocks, score, max_size=2)
    assert len(steps) == 2 and np.isnan(steps[0].gain)
    standard = {k: (v - v.mean(0)) / v.std(0) for k, v in blocks.items()}
    best_single = max(standard, key=lambda k: score(standard[k]))
    assert steps[0].backbone == best_single
    best_pair_with_first = max((k for k in standard if k != best_single),
                               key=lambda k: score(np.concatenate([standard[best_single], standard[k]], 1)))
    assert steps[1].backbone == best_pair_with_first
    assert steps[1].gain == pytest.approx(steps[1].score - steps[0].score)
    assert len(list(itertools.combinations(blocks, 2))) == 6


def test_greedy_subset_stops_without_gain():
    blocks = {"a": np.ones((10, 1)) * np.arange(10)[:, None], "b": np.ones((10, 1)) * np.arange(10)[:, None]}
    steps = greedy_subset(blocks, lambda x: 1.0, max_size=3)
    assert [s.backbone for s in steps] == ["b"]
