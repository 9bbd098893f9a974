"""OTCE, LFC, RSA and DDS against slow N×N / loop references, closed forms, invariances, golden values.

Golden conventions: float64 up-cast features (OTCE's reference built its cost in float32 torch, hence
the 1e-7 tolerance on W; CE is exactly the same coupling, 1e-10); RSA/DDS compare ``features`` with
``source_logits`` (regression: ``targets``); LFC's reference builds its label matrix in float32 (1e-9).
"""

import warnings

import numpy as np
import ot
import pytest
import scipy.stats
from conftest import make_classification
from reference_cases import GOLDEN, make_case
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.preprocessing import StandardScaler

from app.transferability import ConvergenceWarning, SubsampleWarning, dds, lfc, otce, otce_components, rsa


# ------------------------------------------------------------------------------------------- OTCE
def slow_otce(xs, ys, xt, yt):
    cost = np.array([[np.sum((a - b) ** 2) for b in xt] for a in xs])
    plan = ot.emd(np.full(len(xs), 1 / len(xs)), np.full(len(xt), 1 / len(xt)), cost, numItermax=10**7)
    w = float(np.sum(plan * cost))
    ce = 0.0
    for a in np.unique(ys):
        p_a = plan[ys == a].sum()
        for b in np.unique(yt):
            p_ab = plan[np.ix_(ys == a, yt == b)].sum()
            if p_ab > 0:
                ce -= p_ab * np.log(p_ab / p_a)
    return w, ce


def test_otce_matches_loops():
    xs, ys = make_classification(n=40, d=3, c=3, seed=80)
    xt, yt = make_classification(n=30, d=3, c=2, seed=81)
    got = otce_components(xs, ys, xt + 0.5, yt)
    w, ce = slow_otce(xs, ys, xt + 0.5, yt)
    assert (got.wasserstein, got.conditional_entropy) == pytest.approx((w, ce), rel=1e-10)
    assert otce(xs, ys, xt + 0.5, yt) == -got.conditional_entropy
    assert (got.n_source, got.n_target) == (40, 30)


def test_otce_closed_forms():
    x, y = make_classification(n=30, d=2, c=3, seed=82)
    same = otce_components(x, y, x, y)
    assert same.wasserstein == pytest.approx(0.0, abs=1e-12) and same.conditional_entropy == 0.0
    # one source class: CE = H(Y_t) of the balanced target labels
    assert otce(x, np.zeros(30), x, y) == pytest.approx(-np.log(3.0), rel=1e-12)
    # translating both samples together changes nothing
    xs, ys = make_classification(n=20, d=2, c=2, seed=88)
    base = otce_components(xs, ys, x, y)
    moved = otce_components(xs + 5.0, ys, x + 5.0, y)
    assert (moved.wasserstein, moved.conditional_entropy) == pytest.approx(
        (base.wasserstein, base.conditional_entropy), rel=1e-10)


@pytest.mark.parametrize("case", ["small", "imbalanced"])
def test_otce_golden(case):
    d, g = make_case(case), GOLDEN[case]
    got = otce_components(d["src_features"].astype(np.float64), d["src_labels"],
                          d["features"].astype(np.float64), d["labels"])
    assert got.wasserstein == pytest.approx(g["otce.wasserstein.tanyang"], rel=1e-7)
    assert got.conditional_entropy == pytest.approx(g["otce.ce.tanyang"], rel=1e-10)


def test_otce_subsample_and_errors():
    xs, ys = make_classification(n=50, d=2, c=2, seed=83)
    with pytest.warns(SubsampleWarning, match="max_samples=20"):
        a = otce(xs, ys, xs + 1.0, ys, max_samples=20)
    with pytest.warns(SubsampleWarning):
        assert otce(xs, ys, xs + 1.0, ys, max_samples=20) == a
    with pytest.raises(ValueError, match="feature dimension"):
        otce(xs, ys, xs[:, :1], ys)
    with pytest.raises(ValueError, match="distinct classes"):
        otce(xs, ys, xs, np.zeros(50))
    with warnings.catch_warnings(record=True) as caught:  # POT's own UserWarning stays inside, in our words
        warnings.simplefilter("always")
        otce(xs, ys, xs + 1.0, ys, max_iter=2)
    assert [type(w.message) for w in caught] == [ConvergenceWarning]
    assert "did not reach optimality: numItermax reached" in str(caught[0].message)


# -------------------------------------------------------------------------------------------- LFC
def slow_lfc(f, y):
    """The public lfc-dot code's steps with explicit N×N matrices (float64 label matrix)."""
    theta = f @ f.T
    theta = theta - theta.mean()
    lsm = (y[:, None] == y[None, :]).astype(float) * 2 - 1
    lsm = lsm - lsm.mean()
    return float(cosine_similarity(theta.reshape(1, -1), lsm.reshape(1, -1))[0, 0])


@pytest.mark.parametrize(("n", "d", "c", "shift"), [(60, 4, 3, 0.0), (30, 50, 4, 5.0), (80, 3, 2, -20.0)])
def test_lfc_matches_kernel_matrices(n, d, c, shift):
    f, y = make_classification(n=n, d=d, c=c, seed=84)
    assert lfc(f + shift, y) == pytest.approx(slow_lfc(f + shift, y), rel=1e-10)


def test_lfc_closed_form_and_invariances():
    f = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert lfc(f, [0, 0, 1, 1]) == pytest.approx(1.0)
    g, y = make_classification(n=50, d=4, c=3, seed=85)
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(4, 4)))
    assert lfc(g @ q, y) == pytest.approx(lfc(g, y), rel=1e-12)
    assert lfc(g * 7.0, y) == pytest.approx(lfc(g, y), rel=1e-12)
    with pytest.raises(ValueError, match="constant features"):
        lfc(np.ones((10, 3)), np.arange(10) % 2)


@pytest.mark.parametrize("case", ["small", "imbalanced"])
def test_lfc_golden_is_the_frobenius_form(case):
    d, g = make_case(case), GOLDEN[case]
    value = lfc(d["features"].astype(np.float64), d["labels"])
    assert value == pytest.approx(g["lfc.cosine_pub[dot]"], rel=1e-9)
    # the other public implementation divides by spectral norms: a different number, not provided
    assert abs(value - g["lfc.spectral_norm_pub"]) > 0.5


# --------------------------------------------------------------------------------------- RSA, DDS
def slow_rsa(a, b):
    ra = 1 - np.corrcoef(StandardScaler().fit_transform(a))
    rb = 1 - np.corrcoef(StandardScaler().fit_transform(b))
    iu = np.triu_indices(len(a), 1)
    return scipy.stats.spearmanr(ra[iu], rb[iu])[0] * 100


def _center_unbiased(k):
    k = k.copy()
    n = k.shape[0]
    np.fill_diagonal(k, 0)
    means = k.sum(axis=0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    k -= means[:, None]
    k -= means[None, :]
    np.fill_diagonal(k, 0)
    return k


def slow_dds(a, b):
    ka = _center_unbiased(1 - cosine_similarity(StandardScaler().fit_transform(a)))
    kb = _center_unbiased(1 - cosine_similarity(StandardScaler().fit_transform(b)))
    return ka.ravel() @ kb.ravel() / (np.linalg.norm(ka) * np.linalg.norm(kb)) * 100


def _pair(seed=86, n=50, d=6, k=4):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, d))
    return a, np.tanh(a[:, :k] @ rng.normal(size=(k, k))) + 0.3 * rng.normal(size=(n, k))


def test_rsa_and_dds_match_matrix_references():
    a, b = _pair()
    assert rsa(a, b) == pytest.approx(slow_rsa(a, b), rel=1e-10)
    assert dds(a, b) == pytest.approx(slow_dds(a, b), rel=1e-10)
    a2 = a.copy()
    a2[:, 0] = 3.0  # a constant column (standardised to 0) and a zero row after standardisation
    assert dds(a2, b) == pytest.approx(slow_dds(a2, b), rel=1e-10)


def test_rsa_dds_closed_forms_and_invariances():
    a, b = _pair(seed=87)
    assert rsa(a, a) == pytest.approx(100.0) and dds(a, a) == pytest.approx(100.0)
    assert dds(a, b) == pytest.approx(dds(b, a), rel=1e-12) and rsa(a, b) == pytest.approx(rsa(b, a))
    scale = np.array([1.0, 5.0, 0.2, 3.0, 1.0, 9.0])
    assert rsa(a * scale + 4.0, b) == pytest.approx(rsa(a, b), rel=1e-9)  # per-column standardisation
    assert dds(a * scale + 4.0, b) == pytest.approx(dds(a, b), rel=1e-9)


@pytest.mark.parametrize("case", ["small", "imbalanced", "regression"])
def test_rsa_dds_golden(case):
    d, g = make_case(case), GOLDEN[case]
    ref, tag = (d["targets"], "vs_targets") if case == "regression" else (d["source_logits"], "vs_source_logits")
    f, ref = d["features"].astype(np.float64), ref.astype(np.float64)
    assert rsa(f, ref) == pytest.approx(g[f"rsa.parc_repo[{tag}]"], rel=1e-9)
    assert dds(f, ref) == pytest.approx(g[f"dds.parc_repo[{tag}]"], rel=1e-10)


def test_rsa_dds_degenerate_inputs():
    a, b = _pair(n=12)
    with pytest.raises(ValueError, match="same samples"):
        rsa(a, b[:-1])
    with pytest.raises(ValueError, match="same samples"):
        dds(a, b[:-1])
    with pytest.raises(ValueError, match="at least 4 rows"):
        dds(a[:3], b[:3])
    with pytest.raises(ValueError, match="all equal"):
        rsa(a, np.ones_like(b))
    with pytest.raises(ValueError, match="zero centred cosine kernel"):
        dds(a, np.ones_like(b))
    with pytest.warns(SubsampleWarning, match="max_samples=10"):
        first = rsa(a, b, max_samples=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SubsampleWarning)
        assert rsa(a, b, max_samples=10) == first
