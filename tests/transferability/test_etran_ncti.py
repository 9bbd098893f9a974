"""ETran (LDA score, energy score, pool combination) and NCTI (three components, pool combination).

Conventions of the golden comparisons (reference_cases.py): float32 case arrays up-cast to float64; pools
of three members (features, tanh, relu). Tolerance: 1e-10 relative (the implementations are exact
re-derivations; the references differ only by floating-point order).
"""

import numpy as np
import pytest
import scipy.special
from conftest import make_classification
from reference_cases import GOLDEN, make_case
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from app.transferability import (
    etran_combine,
    etran_energy,
    etran_lda,
    ncti_combine,
    ncti_components,
    ncti_ncc,
    ncti_seli,
    ncti_vc,
)

GOLD_REL = 1e-10


def _pool(f):
    return {"features": f, "tanh": np.tanh(f), "relu": np.maximum(f, 0.0)}


# ------------------------------------------------------------------------------------ slow references
def slow_lda_score(x, y):
    """ETran's LDA_Score arithmetic step by step: scatter matrices, power-iteration shrinkage, eigh of the
    non-symmetric inv(S_w)·S_b, prediction weights means·V·Vᵀ, softmax, mean true-class posterior."""
    classes = np.unique(y)
    yi = np.searchsorted(classes, y)
    n, d = x.shape
    priors = np.bincount(yi) / n
    means = np.array([x[yi == k].mean(axis=0) for k in range(len(classes))])
    sw = sum(priors[k] * np.cov(x[yi == k].T, bias=True).reshape(d, d) for k in range(len(classes)))
    v = sw.sum(axis=1)
    for _ in range(3):
        u = sw @ v / np.linalg.norm(sw @ v)
        v = sw @ u / np.linalg.norm(sw @ u)
    shrink = max(np.exp(-5 * (v @ sw @ u)), 1e-10)

    def shrunk(s):
        return (1 - shrink) * s + shrink * np.trace(s) / d * np.eye(d)

    sb = shrunk(np.cov(x.T, bias=True).reshape(d, d)) - shrunk(sw)
    evals, evecs = np.linalg.eigh(np.linalg.inv(shrunk(sw)) @ sb)
    evecs = evecs[:, np.argsort(evals)[::-1]]
    coef = means @ evecs @ evecs.T
    intercept = -0.5 * np.diag(means @ coef.T) + np.log(priors)
    p = scipy.special.softmax(x @ coef.T + intercept, axis=1)
    return p[np.arange(n), yi].mean()


def slow_energy(x, percent, tail):
    e = sorted(float(np.log(np.sum(np.exp(row)))) for row in x)
    k = int(percent * 10) * len(e) // 1000
    return float(np.mean(e[:k] if tail == "bottom" else e[-k:]))


def slow_ncti(x, y, pca_dim=64):
    """NCTI_Score's steps with scikit-learn's exact PCA and numpy nuclear norms."""
    pca = PCA(n_components=pca_dim, svd_solver="full")
    z = pca.fit_transform(x)
    temp = max(np.exp(-pca.explained_variance_[: pca_dim // 2].sum()), 1e-10)
    clf = (LinearDiscriminantAnalysis(solver="svd") if temp == 1e-10
           else LinearDiscriminantAnalysis(solver="eigen", shrinkage=float(temp)))
    low = clf.fit_transform(z, y)
    low = low - low.mean(axis=0, keepdims=True)
    seli = np.linalg.norm(low, ord="nuc")
    post = clf.predict_proba(z)
    yi = np.searchsorted(np.unique(y), y)
    ncc = post[np.arange(len(y)), yi].mean()
    vc = np.log(sum(np.linalg.norm(post[yi == c], ord="nuc") for c in range(post.shape[1])))
    return seli, ncc, vc


# ------------------------------------------------------------------------------------------- ETran
@pytest.mark.parametrize(("n", "d", "c"), [(90, 5, 3), (30, 50, 4)])
def test_etran_lda_equals_reference_arithmetic(n, d, c):
    f, y = make_classification(n=n, d=d, c=c, seed=60, sep=0.7)
    assert etran_lda(f, y) == pytest.approx(slow_lda_score(f, y), rel=1e-9)


def test_etran_lda_closed_form_and_rotation_invariance():
    # two classes at 0 and 2 (1-D, no spread): each sample's true-class logit leads by 2 → sigmoid(2)
    f = np.array([[0.0], [0.0], [2.0], [2.0]])
    assert etran_lda(f, [0, 0, 1, 1]) == pytest.approx(1 / (1 + np.exp(-2.0)), rel=1e-12)
    f, y = make_classification(n=60, d=4, c=3, seed=61)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))
    assert etran_lda(f @ q, y) == pytest.approx(etran_lda(f, y), rel=1e-10)
    assert etran_lda(f * 3.0, y) != pytest.approx(etran_lda(f, y), rel=1e-3)  # not scale invariant (as coded)


@pytest.mark.parametrize("tail", ["bottom", "top"])
def test_etran_energy_matches_sorted_list(tail):
    rng = np.random.default_rng(62)
    f = rng.normal(size=(450, 3))
    assert etran_energy(f, tail=tail) == pytest.approx(slow_energy(f, 0.5, tail), rel=1e-12)
    assert etran_energy(f, percent=10, tail=tail) == pytest.approx(slow_energy(f, 10, tail), rel=1e-12)


def test_etran_energy_degenerate_inputs_raise():
    with pytest.raises(ValueError, match="tail of 199 samples is empty"):
        etran_energy(np.zeros((199, 3)))  # the reference returns NaN here
    assert etran_energy(np.zeros((200, 3))) == pytest.approx(np.log(3.0))
    with pytest.raises(ValueError, match="percent"):
        etran_energy(np.zeros((300, 2)), percent=0)
    with pytest.raises(ValueError, match="percent"):
        etran_energy(np.zeros((300, 2)), percent=101)
    with pytest.raises(ValueError, match="tail"):
        etran_energy(np.zeros((300, 2)), tail="bot")


def test_etran_energy_min_count_floors_the_tail_and_changes_nothing_above():
    rng = np.random.default_rng(66)
    small = rng.normal(size=(120, 4))  # k = 0 at the reference's count
    energies = np.sort(scipy.special.logsumexp(small, axis=1))
    assert etran_energy(small, min_count=1) == pytest.approx(energies[0], rel=1e-12)
    assert etran_energy(small, min_count=3) == pytest.approx(energies[:3].mean(), rel=1e-12)
    assert etran_energy(small, min_count=500) == pytest.approx(energies.mean(), rel=1e-12)  # capped at N
    big = rng.normal(size=(800, 4))  # k = 4 ≥ 1: the reference's value
    assert etran_energy(big, min_count=1) == etran_energy(big)
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="min_count"):
            etran_energy(big, min_count=bad)


@pytest.mark.parametrize("case", ["small", "imbalanced"])
def test_etran_golden(case):
    d, g = make_case(case), GOLDEN[case]
    f, y = d["features"].astype(np.float64), d["labels"]
    assert etran_lda(f, y) == pytest.approx(g["etran.lda_score"], rel=GOLD_REL)
    assert etran_energy(f) == pytest.approx(g["etran.energy_on_features"], rel=GOLD_REL)
    assert etran_energy(d["source_logits"].astype(np.float64)) == pytest.approx(g["etran.energy_on_logits"],
                                                                                 rel=GOLD_REL)
    parts = {m: {"etran_lda": etran_lda(v, y), "etran_energy": etran_energy(v)} for m, v in _pool(f).items()}
    for m in ("tanh", "relu"):
        assert parts[m]["etran_lda"] == pytest.approx(g[f"etran.lda_score[pool3:{m}]"], rel=GOLD_REL)
        assert parts[m]["etran_energy"] == pytest.approx(g[f"etran.energy_on_features[pool3:{m}]"], rel=GOLD_REL)
    combined = etran_combine(parts)
    for m in combined:
        assert combined[m] == pytest.approx(g[f"etran.combined[pool3:{m}]"], rel=GOLD_REL, abs=1e-15)


def test_etran_energy_golden_regression():
    f = make_case("regression")["features"].astype(np.float64)
    assert etran_energy(f) == pytest.approx(GOLDEN["regression"]["etran.energy_on_features"], rel=GOLD_REL)


def test_etran_combine_arithmetic_and_errors():
    parts = {"a": {"etran_lda": 0.2, "etran_energy": 1.0}, "b": {"etran_lda": 0.6, "etran_energy": 3.0},
             "c": {"etran_lda": 0.4, "etran_energy": 5.0}}
    out = etran_combine(parts)
    assert out == pytest.approx({"a": 0.0, "b": 0.85 + 0.15 * 0.5, "c": 0.85 * 0.5 + 0.15})
    assert etran_combine(dict(reversed(list(parts.items())))) == out  # pool order does not matter
    with pytest.raises(ValueError, match="at least 2 candidate models"):
        etran_combine({"a": parts["a"]})
    with pytest.raises(ValueError, match="same etran_lda"):
        etran_combine({"a": parts["a"], "b": {"etran_lda": 0.2, "etran_energy": 2.0}})
    with pytest.raises(ValueError, match="lacks part 'etran_energy'"):
        etran_combine({"a": parts["a"], "b": {"etran_lda": 0.3}})
    with pytest.raises(ValueError, match="not finite"):
        etran_combine({"a": parts["a"], "b": {"etran_lda": float("nan"), "etran_energy": 2.0}})
    with pytest.raises(ValueError, match="cls_weight"):
        etran_combine(parts, cls_weight=1.5)


# -------------------------------------------------------------------------------------------- NCTI
@pytest.mark.parametrize("scale", [3.0, 0.05])  # large variances: the unshrunk SVD branch; small: shrinkage
def test_ncti_matches_sklearn_steps(scale):
    f, y = make_classification(n=120, d=10, c=3, seed=63, sep=0.8)
    f = f * scale
    got = ncti_components(f, y, pca_dim=8)
    assert (got.shrinkage is None) == (scale == 3.0)
    seli, ncc, vc = slow_ncti(f, y, pca_dim=8)
    assert (got.seli, got.ncc, got.vc) == pytest.approx((seli, ncc, vc), rel=1e-8)
    assert ncti_seli(f, y, pca_dim=8) == got.seli and ncti_ncc(f, y, pca_dim=8) == got.ncc
    assert ncti_vc(f, y, pca_dim=8) == got.vc


def test_ncti_rotation_invariant_and_d_lt_n_path():
    f, y = make_classification(n=80, d=6, c=3, seed=64)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(6, 6)))
    a, b = ncti_components(f, y, pca_dim=4), ncti_components(f @ q, y, pca_dim=4)
    assert (a.seli, a.ncc, a.vc) == pytest.approx((b.seli, b.ncc, b.vc), rel=1e-8)
    wide, yw = make_classification(n=20, d=40, c=2, seed=65)  # N < D: PCA from the N×N Gram
    seli, ncc, vc = slow_ncti(wide, yw, pca_dim=10)
    got = ncti_components(wide, yw, pca_dim=10)
    assert (got.seli, got.ncc, got.vc) == pytest.approx((seli, ncc, vc), rel=1e-7)


def test_ncti_golden_imbalanced():
    d, g = make_case("imbalanced"), GOLDEN["imbalanced"]
    y = d["labels"]
    parts = {}
    for m, v in _pool(d["features"].astype(np.float64)).items():
        c = ncti_components(v, y)
        sfx = "" if m == "features" else f"[pool3:{m}]"
        assert c.seli == pytest.approx(g[f"ncti.seli{sfx}"], rel=GOLD_REL)
        assert c.ncc == pytest.approx(g[f"ncti.ncc{sfx}"], rel=GOLD_REL)
        assert c.vc == pytest.approx(g[f"ncti.vc_log_nuc{sfx}"], rel=GOLD_REL)
        parts[m] = {"ncti_seli": c.seli, "ncti_ncc": c.ncc, "ncti_vc": c.vc}
    combined = ncti_combine(parts)
    for m in combined:
        assert combined[m] == pytest.approx(g[f"ncti.combined[pool3:{m}]"], rel=GOLD_REL)


def test_ncti_too_few_dimensions_raises_like_the_reference():
    d = make_case("small")  # D = 32 < 64: the reference's PCA raises ValueError as well
    with pytest.raises(ValueError, match="pca_dim=64"):
        ncti_components(d["features"], d["labels"])
    assert np.isfinite(ncti_components(d["features"], d["labels"], pca_dim=32).seli)
    with pytest.raises(ValueError, match="distinct classes"):
        ncti_components(np.random.default_rng(0).normal(size=(80, 8)), np.zeros(80), pca_dim=4)


def test_ncti_auto_pca_dim_is_the_reference_where_it_runs_and_every_direction_below():
    d = make_case("small")  # D = 32: the reference raises; "auto" keeps all 32 principal directions
    f, y = d["features"].astype(np.float64), d["labels"]
    assert ncti_components(f, y, pca_dim="auto") == ncti_components(f, y, pca_dim=32)
    wide = make_case("imbalanced")  # D ≥ 64 and N ≥ 64: "auto" is the reference's 64
    fw, yw = wide["features"].astype(np.float64), wide["labels"]
    assert min(fw.shape) >= 64
    assert ncti_components(fw, yw, pca_dim="auto") == ncti_components(fw, yw)
    few, yf = make_classification(n=30, d=100, c=3, seed=67)  # N < 64: min(64, N, D) = 30
    assert ncti_components(few, yf, pca_dim="auto") == ncti_components(few, yf, pca_dim=30)
    with pytest.raises(ValueError, match="'auto'"):
        ncti_components(f, y, pca_dim="all")


def test_ncti_combine_arithmetic_and_errors():
    parts = {"a": {"ncti_seli": 1.0, "ncti_ncc": 0.5, "ncti_vc": 2.0},
             "b": {"ncti_seli": 3.0, "ncti_ncc": 0.9, "ncti_vc": 1.0}}
    assert ncti_combine(parts) == {"a": -1.0, "b": 2.0}
    with pytest.raises(ValueError, match="at least 2"):
        ncti_combine({"a": parts["a"]})
    with pytest.raises(ValueError, match="same ncti_vc"):
        ncti_combine({"a": parts["a"], "b": {**parts["b"], "ncti_vc": 2.0}})
    with pytest.raises(ValueError, match="mapping"):
        ncti_combine([parts["a"], parts["b"]])


@pytest.mark.parametrize("tail", ["bottom", "top"])
@pytest.mark.parametrize(("n", "percent", "min_count"), [(400, 0.5, 0), (1000, 2.0, 0), (120, 0.5, 7), (60, 10.0, 1)])
def test_etran_energy_kernel_equals_the_metric_on_resamples_with_tails_of_many_rows(tail, n, percent, min_count):
    from app.transferability.etran import etran_energy_resampled

    rng = np.random.default_rng(n + min_count)
    f = rng.normal(size=(n, 6))
    f[::7] = f[3]  # tied energies, so a tail's last value is drawn from rows of equal energy
    kernel = etran_energy_resampled(f, percent=percent, tail=tail, min_count=min_count)
    for _ in range(8):
        idx = rng.integers(0, n, rng.integers(n // 2, 2 * n))  # resamples smaller and larger than n
        got = kernel(np.bincount(idx, minlength=n))
        assert got == pytest.approx(etran_energy(f[idx], percent=percent, tail=tail, min_count=min_count),
                                    rel=1e-12, abs=1e-12)
    with pytest.raises(ValueError, match="empty"):
        etran_energy_resampled(f, percent=0.5)(np.bincount([0, 1, 2], minlength=n))  # 3 rows: an empty tail
