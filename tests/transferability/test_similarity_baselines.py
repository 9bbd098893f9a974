"""Baselines, domain distances and task difficulty against slow implementations and closed forms."""

import math
import warnings

import numpy as np
import ot
import pytest
import scipy.linalg
from conftest import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from app.transferability import (
    SubsampleWarning,
    frechet_distance,
    knn_accuracy,
    linear_probe_accuracy,
    mmd,
    otdd,
    proxy_a_distance,
    task_difficulty,
)


def slow_knn(f, y, k):
    n = len(y)
    correct = 0
    for i in range(n):
        d = [(np.sum((f[i] - f[j]) ** 2), j) for j in range(n) if j != i]
        d.sort()
        votes = {}
        for rank, (_, j) in enumerate(d[:k]):
            cnt, first = votes.get(y[j], (0, rank))
            votes[y[j]] = (cnt + 1, min(first, rank))
        best = max(votes.items(), key=lambda kv: (kv[1][0], -kv[1][1]))[0]
        correct += best == y[i]
    return correct / n


@pytest.mark.parametrize("k", [1, 3, 5])
def test_knn_matches_loops(k):
    f, y = make_classification(n=60, d=4, c=3, seed=40, sep=0.8)
    assert knn_accuracy(f, y, k=k) == pytest.approx(slow_knn(f, y, k))


def test_knn_tie_goes_to_nearer_class():
    f = np.array([[0.0], [1.0], [-2.5], [10.0], [11.0]])
    # sample 0 with k=2: neighbours 1 (label 1, d=1) and 2 (label 0, d=2.5) tie 1-1 → label 1 (nearer).
    y = np.array([0, 1, 0, 1, 1])
    assert knn_accuracy(f, y, k=2) == pytest.approx(slow_knn(f, y, 2))


def test_knn_duplicates_do_not_count_self():
    f = np.array([[0.0], [0.0], [5.0], [5.0]])
    assert knn_accuracy(f, [0, 0, 1, 1], k=1) == 1.0
    assert knn_accuracy(f, [0, 1, 0, 1], k=1) == 0.0


def test_linear_probe_matches_sklearn_cv():
    f, y = make_classification(n=80, d=4, c=3, seed=41, sep=0.7)
    ref = cross_val_score(
        make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=200, random_state=0)),
        f, y, cv=StratifiedKFold(5, shuffle=True, random_state=0)).mean()
    assert linear_probe_accuracy(f, y) == pytest.approx(ref)


def test_linear_probe_small_class_reduces_folds():
    f, y = make_classification(n=40, d=3, c=2, seed=42)
    y = y.copy()
    y[:3] = 5
    with pytest.warns(UserWarning, match="using 3 folds"):
        assert 0 <= linear_probe_accuracy(f, y) <= 1
    y[:1] = 9
    with pytest.raises(ValueError, match="at least 2 samples"):
        linear_probe_accuracy(f, y)


def slow_frechet(a, b):
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(sa @ sb).real
    return mu @ mu + np.trace(sa + sb - 2 * covmean)


@pytest.mark.parametrize(("na", "nb", "d"), [(50, 40, 4), (10, 12, 20)])
def test_frechet_matches_sqrtm_formula(na, nb, d):
    rng = np.random.default_rng(43)
    a = rng.normal(size=(na, d))
    b = rng.normal(size=(nb, d)) * 1.5 + 0.3
    assert frechet_distance(a, b) == pytest.approx(slow_frechet(a, b), rel=1e-6, abs=1e-8)


def test_frechet_closed_forms():
    rng = np.random.default_rng(44)
    a = rng.normal(size=(30, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, a + [1.0, 2.0, 0.0]) == pytest.approx(5.0, rel=1e-9)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    b = rng.normal(size=(25, 3))
    assert frechet_distance(a @ q, b @ q) == pytest.approx(frechet_distance(a, b), rel=1e-9)


def slow_mmd2(a, b, sigma):
    def k(x, y):
        return math.exp(-np.sum((x - y) ** 2) / (2 * sigma**2))

    m, n = len(a), len(b)
    kaa = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kbb = sum(k(b[i], b[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kab = sum(k(a[i], b[j]) for i in range(m) for j in range(n)) / (m * n)
    return kaa + kbb - 2 * kab


def test_mmd_matches_loops_and_median():
    rng = np.random.default_rng(45)
    a, b = rng.normal(size=(20, 3)), rng.normal(size=(15, 3)) + 0.5
    assert mmd(a, b, bandwidth=1.3) == pytest.approx(slow_mmd2(a, b, 1.3), rel=1e-10)
    pooled = np.vstack([a, b])
    d = np.sqrt(((pooled[:, None] - pooled[None]) ** 2).sum(-1))
    med = np.median(d[np.triu_indices(len(pooled), 1)])
    assert mmd(a, b) == pytest.approx(slow_mmd2(a, b, med), rel=1e-9)


@pytest.mark.parametrize("m, n", [(2, 2), (9, 3), (41, 17), (300, 130)])
def test_mmd_blocked_upper_triangle_matches_loops(m, n):
    # sizes below, at and far above the 8 row blocks the within-sample sums use (blocks of 1, uneven tails)
    rng = np.random.default_rng(m + n)
    a, b = rng.normal(size=(m, 4)), rng.normal(size=(n, 4)) + 0.3
    assert mmd(a, b, bandwidth=0.9) == pytest.approx(slow_mmd2(a, b, 0.9), rel=1e-10, abs=1e-14)


def test_mmd_same_distribution_near_zero_and_shift_larger():
    rng = np.random.default_rng(46)
    a, b = rng.normal(size=(100, 2)), rng.normal(size=(100, 2))
    assert abs(mmd(a, b)) < 0.05
    assert mmd(a, b + 3.0) > 0.5


def test_proxy_a_distance_extremes():
    rng = np.random.default_rng(47)
    a = rng.normal(size=(60, 3))
    assert proxy_a_distance(a, a + 20.0) == pytest.approx(2.0)
    assert proxy_a_distance(a, rng.normal(size=(60, 3))) < 1.0


def test_similarity_shape_errors():
    with pytest.raises(ValueError, match="share the feature dimension"):
        frechet_distance(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        mmd(np.zeros((1, 2)), np.zeros((3, 2)))


# ------------------------------------------------------------------------------------------------ OTDD
def slow_otdd(xs, ys, xt, yt, inner, entreg, convention="relative"):
    """OTDD from explicit loops. ``"relative"``: full cost, ε = entreg × mean cost, POT's plain Sinkhorn;
    ``"otdd"``: ½ cost, absolute ε, POT's log-domain Sinkhorn run to 1e-10."""
    groups = [xs[ys == c] for c in np.unique(ys)] + [xt[yt == c] for c in np.unique(yt)]
    labels_s = np.searchsorted(np.unique(ys), ys)
    labels_t = np.searchsorted(np.unique(yt), yt) + len(np.unique(ys))
    g = len(groups)
    w = np.zeros((g, g))
    for i in range(g):
        for j in range(g):
            if i == j:
                continue
            if inner == "exact":
                ga, gb = groups[i], groups[j]
                cost = np.array([[np.sum((p - q) ** 2) for q in gb] for p in ga])
                w[i, j] = ot.emd2(np.full(len(ga), 1 / len(ga)), np.full(len(gb), 1 / len(gb)), cost)
            else:
                ma, mb = groups[i].mean(0), groups[j].mean(0)
                sa, sb = np.cov(groups[i], rowvar=False, bias=True), np.cov(groups[j], rowvar=False, bias=True)
                ra = scipy.linalg.sqrtm(sa).real
                w[i, j] = max(np.sum((ma - mb) ** 2) + np.trace(sa + sb - 2 * scipy.linalg.sqrtm(ra @ sb @ ra).real), 0)

    def cost(x1, l1, x2, l2):
        return np.array([[np.sum((x1[i] - x2[j]) ** 2) + w[l1[i], l2[j]] for j in range(len(x2))]
                         for i in range(len(x1))])

    half = 0.5 if convention == "otdd" else 1.0
    c_st = half * cost(xs, labels_s, xt, labels_t)
    reg = entreg if convention == "otdd" else entreg * c_st.mean()
    method, iters, thr = ("sinkhorn_log", 20000, 1e-10) if convention == "otdd" else ("sinkhorn", 1000, 1e-9)

    def sink(c):
        return ot.sinkhorn2(np.full(c.shape[0], 1 / c.shape[0]), np.full(c.shape[1], 1 / c.shape[1]), half * c,
                            reg, method=method, numItermax=iters, stopThr=thr)

    return max(sink(c_st / half) - 0.5 * sink(cost(xs, labels_s, xs, labels_s))
               - 0.5 * sink(cost(xt, labels_t, xt, labels_t)), 0)


@pytest.mark.parametrize("inner", ["exact", "gaussian"])
def test_otdd_matches_slow(inner):
    xs, ys = make_classification(n=24, d=3, c=2, seed=48)
    xt, yt = make_classification(n=18, d=3, c=3, seed=49)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = slow_otdd(xs, ys, xt, yt, inner, 0.1)
    assert otdd(xs, ys, xt, yt, inner=inner, convention="relative", tol=1e-9) == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("inner", ["exact", "gaussian"])
def test_otdd_convention_matches_slow_log_sinkhorn(inner):
    # the otdd convention: ½ cost, absolute ε = 0.1; small coordinates keep POT's log-Sinkhorn fast
    xs, ys = make_classification(n=24, d=3, c=2, seed=48, sep=0.6)
    xt, yt = make_classification(n=18, d=3, c=3, seed=49, sep=0.6)
    xs, xt = xs * 0.5, xt * 0.5 + 0.2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = slow_otdd(xs, ys, xt, yt, inner, 0.1, convention="otdd")
    assert otdd(xs, ys, xt, yt, inner=inner, tol=1e-10) == pytest.approx(ref, rel=1e-6)
    assert otdd(xs, ys, xt, yt, inner=inner) == pytest.approx(ref, rel=1e-4)  # default tol 1e-4


@pytest.mark.parametrize("inner", ["exact", "gaussian"])
def test_otdd_self_distance_zero_and_shift_positive(inner):
    x, y = make_classification(n=30, d=3, c=3, seed=50)
    assert otdd(x, y, x, y, inner=inner) == pytest.approx(0.0, abs=1e-9)
    assert otdd(x, y, x + 2.0, y, inner=inner) > otdd(x, y, x + 0.5, y, inner=inner) > 0


def test_otdd_subsamples_above_max_samples():
    x, y = make_classification(n=40, d=3, c=2, seed=51)
    with pytest.warns(SubsampleWarning):
        a = otdd(x, y, x + 1.0, y, max_samples=20)
    with pytest.warns(SubsampleWarning):
        assert otdd(x, y, x + 1.0, y, max_samples=20) == a


def test_otdd_errors():
    x, y = make_classification(n=10, d=3, c=2)
    with pytest.raises(ValueError, match="inner"):
        otdd(x, y, x, y, inner="bogus")
    with pytest.raises(ValueError, match="convention"):
        otdd(x, y, x, y, convention="geomloss")
    with pytest.raises(ValueError, match="feature dimension"):
        otdd(x, y, x[:, :2], y)


# ------------------------------------------------------------------------------------------ difficulty
def test_task_difficulty_closed_form():
    f = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [9.0, 9.0], [9.0, 10.0], [10.0, 9.0], [20.0, 20.0]])
    y = ["a", "a", "a", "b", "b", "b", "c"]
    d = task_difficulty(f, y, k=1)
    assert d.n_classes == 3 and d.n_samples == 7 and d.samples_per_class == (3, 3, 1)
    p = np.array([3, 3, 1]) / 7
    assert d.imbalance == pytest.approx(1 + (p * np.log(p)).sum() / np.log(3))
    assert d.knn_error == pytest.approx(1 / 7)  # the lone "c" sample
    mu = f.mean(0)
    means = {c: f[np.array(y) == c].mean(0) for c in "abc"}
    between = sum(np.sum(y.count(c) * (means[c] - mu) ** 2) for c in "abc")
    assert d.fisher_separability == pytest.approx(between / np.sum((f - mu) ** 2))
    assert d.to_dict()["samples_per_class"] == [3, 3, 1]


def test_two_nn_recovers_dimension_of_a_plane():
    rng = np.random.default_rng(52)
    plane = rng.uniform(size=(2000, 2)) @ rng.normal(size=(2, 10))
    d = task_difficulty(plane, np.arange(2000) % 2)
    assert d.intrinsic_dimension == pytest.approx(2.0, rel=0.1)


def test_task_difficulty_degenerate_single_class_and_duplicates():
    d = task_difficulty(np.ones((5, 3)), [1] * 5)
    assert (d.n_classes, d.imbalance, d.knn_error, d.fisher_separability, d.intrinsic_dimension) == (1, 0.0, 0.0, 0.0, 0.0)
