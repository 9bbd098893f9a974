"""Resampled (bootstrap) kernels against the slow path: the metric on the materialised resample
``(features[idx], labels[idx])``, for every metric the registry gives a kernel."""

import warnings

import numpy as np
import pytest
from conftest import make_classification, make_probs

from app.transferability import METRICS, knn_accuracy, resampled_kernel, score
from app.transferability._neighbors import _sq_dist, full_row, neighbor_lists
from app.transferability.logme import ConvergenceWarning

KERNEL_METRICS = sorted(name for name, spec in METRICS.items() if spec.resampled is not None)
#: the keywords a ranking job passes (ETran's energy scores targets under 200 rows from its lowest energy)
JOB_KW = {name: dict(METRICS[name].job_kwargs) for name in KERNEL_METRICS}
LABEL_FREE = {"etran_energy"}  # reads no labels: no class to miss, one row is a sample


def _inputs(name, n, d, c, seed):
    rng = np.random.default_rng(seed)
    if METRICS[name].needs_source_head:
        p, y = make_probs(n=n, cs=6, c=c, seed=seed)
        return {"source_probs": p}, y
    f, y = make_classification(n=n, d=d, c=c, seed=seed, sep=1.0)
    return {"features": f + 3.0 * rng.normal(size=d)}, y  # an offset: centring must be exact, not assumed


def _resamples(labels, rng, stratified):
    n = len(labels)
    if not stratified:
        return np.sort(rng.integers(0, n, n))
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), size=int((labels == c).sum()))
                                   for c in np.unique(labels)]))


def _slow(name, data, labels, idx, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return score(name, labels=labels[idx], **{k: v[idx] for k, v in data.items()}, **{**JOB_KW[name], **kw})


def _fast(kernel, idx, n):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return kernel(np.bincount(idx, minlength=n))


def test_the_registry_names_the_kernels():
    assert set(KERNEL_METRICS) >= {"logme", "leep", "nce", "hscore", "hscore_shrinkage", "gbc", "sfda",
                                   "transrate", "knn_accuracy"}
    for name in KERNEL_METRICS:
        assert METRICS[name].bootstrap, name
        assert METRICS[name].to_dict()["resampled_kernel"] is True
    assert resampled_kernel("linear_probe_accuracy", features=np.eye(4), labels=[0, 0, 1, 1]) is None


@pytest.mark.parametrize("name", KERNEL_METRICS)
@pytest.mark.parametrize(("n", "d", "c"), [(90, 5, 3), (40, 12, 4), (24, 30, 2)])
def test_kernel_equals_metric_on_materialised_resample(name, n, d, c):
    data, y = _inputs(name, n, d, c, seed=n + d)
    kernel = resampled_kernel(name, labels=y, **data, **JOB_KW[name])
    rng = np.random.default_rng(d)
    for r in range(6):
        idx = _resamples(y, rng, stratified=r % 2 == 0)  # duplicates in every resample
        if len(np.unique(y[idx])) < 2:
            continue
        if name == "logme" and len(np.unique(idx)) <= d + 1:
            # every label vector lies in the span of the drawn rows: the evidence is maximised at the
            # boundary (β → ∞) and its value is set by the 1e-12 floors, i.e. by rounding in either path
            continue
        assert _fast(kernel, idx, n) == pytest.approx(_slow(name, data, y, idx), rel=1e-9, abs=1e-12), (name, r)


@pytest.mark.parametrize("name", KERNEL_METRICS)
def test_a_class_missing_from_the_resample_disappears(name):
    data, y = _inputs(name, 60, 4, 3, seed=5)
    y = y.copy()
    y[:2] = 7  # a tiny class of two rows
    kernel = resampled_kernel(name, labels=y, **data, **JOB_KW[name])
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(np.flatnonzero(y != 7), size=60))  # the tiny class not drawn
    assert _fast(kernel, idx, 60) == pytest.approx(_slow(name, data, y, idx), rel=1e-9, abs=1e-12)
    idx = np.sort(np.concatenate([[0, 0, 0], idx[:-3]]))  # one row of it drawn three times
    assert _fast(kernel, idx, 60) == pytest.approx(_slow(name, data, y, idx), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", KERNEL_METRICS)
def test_kernel_of_unit_counts_is_the_metric(name):
    data, y = _inputs(name, 50, 6, 3, seed=9)
    kernel = resampled_kernel(name, labels=y, **data, **JOB_KW[name])
    assert _fast(kernel, np.arange(50), 50) == pytest.approx(_slow(name, data, y, np.arange(50)), rel=1e-9,
                                                             abs=1e-12)


@pytest.mark.parametrize("name", KERNEL_METRICS)
def test_kernel_is_invariant_to_row_order_and_label_names(name):
    data, y = _inputs(name, 45, 5, 3, seed=11)
    rng = np.random.default_rng(1)
    idx = _resamples(y, rng, stratified=True)
    counts = np.bincount(idx, minlength=45)
    base = resampled_kernel(name, labels=y, **data, **JOB_KW[name])(counts)
    perm = rng.permutation(45)
    permuted = resampled_kernel(name, labels=y[perm], **{k: v[perm] for k, v in data.items()}, **JOB_KW[name])
    assert permuted(counts[perm]) == pytest.approx(base, rel=1e-9, abs=1e-12)
    renamed = resampled_kernel(name, labels=np.array(["c", "a", "b"])[y], **data, **JOB_KW[name])
    assert renamed(counts) == pytest.approx(base, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", KERNEL_METRICS)
def test_kernel_refuses_what_the_metric_refuses(name):
    data, y = _inputs(name, 30, 4, 3, seed=2)
    kernel = resampled_kernel(name, labels=y, **data, **JOB_KW[name])
    only_one_class = np.flatnonzero(y == 0)
    if name not in ("leep", "nce", *LABEL_FREE):  # LEEP and NCE accept a single target class
        with pytest.raises(ValueError, match="at least 2 distinct classes"):
            kernel(np.bincount(only_one_class, minlength=30))
        with pytest.raises(ValueError):
            _slow(name, data, y, only_one_class)
    one_row = np.eye(1, 30, 0, dtype=int)[0]
    bad_counts = [(np.ones(29, int), "one entry per row"), (-np.ones(30, int), "non-negative"),
                  (np.full(30, 0.5), "integers")]
    if name in LABEL_FREE:  # the metric scores one row, and so does its kernel; no draw at all is refused
        assert _fast(kernel, np.array([0]), 30) == pytest.approx(_slow(name, data, y, np.array([0])))
        bad_counts.append((np.zeros(30, int), "at least 1 rows"))
    else:
        bad_counts.append((one_row, "at least 2 rows"))
    for bad, match in bad_counts:
        with pytest.raises(ValueError, match=match):
            kernel(bad)


def test_kernel_factory_validates_once_like_score():
    f, y = make_classification(n=20, d=3, c=2)
    with pytest.raises(ValueError, match="non-finite"):
        resampled_kernel("logme", features=np.where(np.eye(20, 3) > 0, np.nan, f), labels=y)
    with pytest.raises(ValueError, match="needs input 'labels'"):
        resampled_kernel("gbc", features=f)
    with pytest.raises(ValueError, match="rows must sum to 1"):
        resampled_kernel("leep", source_probs=np.ones((20, 3)), labels=y)
    with pytest.raises(ValueError, match="k must be"):
        resampled_kernel("knn_accuracy", features=f, labels=y, k=0)


def test_logme_regression_kernel():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(70, 5)) + 1.0
    t = f @ rng.normal(size=(5, 2)) + rng.normal(size=(70, 2))
    kernel = resampled_kernel("logme", task_type="regression", features=f, targets=t)
    for _ in range(4):
        idx = np.sort(rng.integers(0, 70, 70))
        want = score("logme", task_type="regression", features=f[idx], targets=t[idx])
        assert kernel(np.bincount(idx, minlength=70)) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize(("n", "d"), [(60, 4), (12, 20)])  # FᵀF and, with fewer rows than features, FFᵀ
def test_logme_batch_equals_the_kernel_one_resample_at_a_time(n, d):
    rng = np.random.default_rng(8)
    y = np.repeat([0, 1, 2], n // 3)
    f = rng.normal(size=(n, d)) + y[:, None]
    kernel = resampled_kernel("logme", features=f, labels=y)
    many = [np.bincount(np.sort(rng.integers(0, n, n)), minlength=n) for _ in range(6)]
    many.append(np.bincount(np.flatnonzero(y != 2), minlength=n))  # a class missing: fewer columns
    many.append(np.bincount(np.flatnonzero(y == 0), minlength=n))  # one class: refused
    out = kernel.batch(many)
    for counts, (value, error, notes) in zip(many[:-1], out[:-1], strict=True):
        assert error is None and notes == []
        assert value == kernel(counts)  # each column's iterates are its own: the same value
    assert out[-1][0] is None and "at least 2 distinct classes" in out[-1][1]


def test_logme_batch_reports_non_convergence_per_resample():
    f, y = make_classification(n=40, d=4, c=2)
    kernel = resampled_kernel("logme", features=f, labels=y, max_iter=1)
    counts = np.ones(40, dtype=np.int64)
    with pytest.warns(ConvergenceWarning) as single:
        kernel(counts)
    (value, error, notes), = kernel.batch([counts])
    assert error is None and notes == [str(single[0].message)]


def test_logme_thuml_variant_materialises():
    f, y = make_classification(n=40, d=4, c=2)
    kernel = resampled_kernel("logme", features=f, labels=y, variant="thuml_fixed_point")
    idx = np.sort(np.random.default_rng(0).integers(0, 40, 40))
    assert kernel(np.bincount(idx, minlength=40)) == score("logme", features=f[idx], labels=y[idx],
                                                           variant="thuml_fixed_point")


# ---- k-NN: exact semantics with duplicates ----------------------------------------------------------------

def test_knn_copies_of_a_row_are_each_others_neighbours():
    f = np.array([[0.0], [0.1], [5.0], [5.1]])
    y = np.array([0, 1, 1, 0])
    kernel = resampled_kernel("knn_accuracy", features=f, labels=y, k=1)
    # rows 0 and 3 drawn twice: each copy's nearest other sample is its twin (distance 0, same label)
    idx = np.array([0, 0, 1, 2, 3, 3])
    assert kernel(np.bincount(idx, minlength=4)) == knn_accuracy(f[idx], y[idx], k=1) == pytest.approx(4 / 6)


def test_knn_ties_at_equal_distance_go_by_label_whatever_the_order():
    # sample 0 has two neighbours at distance 1 with labels 1 and 2; k=1 takes label 1 (the lower code)
    f = np.array([[0.0], [1.0], [-1.0], [10.0], [11.0], [9.0]])
    y = np.array([1, 2, 1, 2, 2, 1])
    for perm in ([0, 1, 2, 3, 4, 5], [2, 1, 0, 5, 4, 3], [5, 3, 4, 1, 2, 0]):
        assert knn_accuracy(f[perm], y[perm], k=1) == knn_accuracy(f, y, k=1)
    identical = np.zeros((4, 2))  # all rows at distance 0 from each other
    assert knn_accuracy(identical, [0, 1, 1, 0], k=1) == 0.5  # every row's nearest is a label-0 row


@pytest.mark.parametrize("seed", range(4))
def test_knn_kernel_with_short_lists_falls_back_to_the_full_order(seed, monkeypatch):
    import app.transferability.baselines as baselines

    monkeypatch.setattr(baselines, "_RESAMPLED_LIST", 3)  # most rows need more than their list
    rng = np.random.default_rng(seed)
    f = np.round(rng.normal(size=(50, 2)), 1)  # rounded: exact ties and duplicate rows
    f[:6] = f[6]
    y = rng.integers(0, 3, 50)
    kernel = resampled_kernel("knn_accuracy", features=f, labels=y, k=5)
    for _ in range(5):
        idx = np.sort(rng.integers(0, 50, 50))
        assert kernel(np.bincount(idx, minlength=50)) == knn_accuracy(f[idx], y[idx], k=5)


def test_neighbour_lists_are_the_exact_order_and_position_independent():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 7)) * 4 + 30  # large offset: the Gram estimate loses digits, the order must not
    x[5] = x[9]
    codes = rng.integers(0, 3, 120)
    lists = neighbor_lists(x, codes, 10)
    assert (lists.valid >= 1).all()
    for i in range(120):
        v = lists.valid[i]
        assert (lists.index[i, :v] == full_row(x, codes, i)[:v]).all()
    idx = rng.integers(0, 120, 120)  # the same pairs inside a resample: the same distances, bit for bit
    assert _sq_dist(x[idx], 3, np.arange(120)).tolist() == _sq_dist(x, int(idx[3]), idx).tolist()


def test_loo_neighbours_leave_out_only_the_row_itself():
    from sklearn.neighbors import NearestNeighbors

    from app.transferability.baselines import loo_neighbors

    rng = np.random.default_rng(2)
    x = rng.normal(size=(80, 6))
    x[1] = x[0]  # a duplicate: its twin is its nearest neighbour at distance exactly 0
    dist, idx = loo_neighbors(x, 4)
    assert idx[0, 0] == 1 and idx[1, 0] == 0 and dist[0, 0] == dist[1, 0] == 0.0
    assert not (idx == np.arange(80)[:, None]).any()
    ref_dist, ref_idx = NearestNeighbors(n_neighbors=4, algorithm="brute").fit(x).kneighbors()
    twin = lambda i: np.where(i == 1, 0, i)  # noqa: E731  (rows 0 and 1 tie for everyone else)
    assert (twin(idx[2:]) == twin(ref_idx[2:])).all()
    assert dist == pytest.approx(ref_dist, abs=1e-6)  # scikit-learn's Gram form puts the twins ~1e-7 apart


def test_single_thread_blas_nests_and_restores():
    from threadpoolctl import threadpool_info

    from app.transferability import single_thread_blas

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    with single_thread_blas():
        assert all(t == 1 for t in blas_threads())
        with single_thread_blas():  # free inside an open one, and leaves the limit in place
            assert all(t == 1 for t in blas_threads())
        assert all(t == 1 for t in blas_threads())
    assert blas_threads() == before
