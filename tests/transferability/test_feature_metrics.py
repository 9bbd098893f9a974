"""H-score, shrinkage H-score, TransRate, SFDA and GBC against slow reference-style implementations."""

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import make_classification
from sklearn.covariance import LedoitWolf, ledoit_wolf_shrinkage
from sklearn.decomposition import PCA

from app.transferability import gbc, hscore, hscore_shrinkage, sfda, transrate
from app.transferability.gbc import pca_project
from app.transferability.hscore import ledoit_wolf_shrinkage as lw_from_gram


# ---------------------------------------------------------------- slow references (loops, direct formulas)
def slow_hscore(f, y):
    covf = np.cov(f, rowvar=False)
    g = np.zeros_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(axis=0)
    return np.trace(np.linalg.pinv(covf, rcond=1e-15) @ np.cov(g, rowvar=False))


def slow_hscore_shrinkage(f, y):
    f = f - f.mean(axis=0)
    lw = LedoitWolf(assume_centered=False).fit(f)
    g = np.zeros_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(axis=0)
    return np.trace(np.linalg.pinv(lw.covariance_, rcond=1e-15) @ ((1 - lw.shrinkage_) * np.cov(g, rowvar=False)))


def slow_transrate(f, y, eps=1e-4):
    def rate(z):
        n, d = z.shape
        return 0.5 * np.linalg.slogdet(np.eye(d) + z.T @ z / (n * eps))[1]

    f = f - f.mean(axis=0)
    classes = np.unique(y)
    return rate(f) - sum(rate(f[y == c]) for c in classes) / len(classes)


def slow_sfda(x, y):
    x = x.copy()
    classes = np.unique(y)
    n, d = x.shape

    def fit_predict(x, shrinkage):
        priors = np.array([np.mean(y == c) for c in classes])
        means = np.array([x[y == c].mean(axis=0) for c in classes])
        sw = sum(p * np.cov(x[y == c].T, bias=True) for p, c in zip(priors, classes, strict=True))
        if shrinkage is None:
            v = sw.sum(axis=1)
            for _ in range(3):
                w = sw @ v
                u = w / np.linalg.norm(w)
                w = sw @ u
                v = w / np.linalg.norm(w)
            shrinkage = max(np.exp(-5 * (v @ sw @ u)), 1e-10)
        st = np.cov(x.T, bias=True)
        st = (1 - shrinkage) * st + shrinkage * np.trace(st) / d * np.eye(d)
        sws = (1 - shrinkage) * sw + shrinkage * np.trace(sw) / d * np.eye(d)
        evals, evecs = scipy.linalg.eigh(st - sws, sws)
        evecs = evecs[:, np.argsort(evals)[::-1]]
        coef = means @ evecs @ evecs.T
        intercept = -0.5 * np.diag(means @ coef.T) + np.log(priors)
        s = x @ coef.T + intercept
        s = np.exp(s - s.max(axis=1, keepdims=True))
        return s / s.sum(axis=1, keepdims=True), shrinkage

    prob, lam = fit_predict(x, None)
    prob = np.exp(prob) / np.exp(prob).sum(axis=1, keepdims=True)
    means = np.array([x[y == c].mean(axis=0) for c in classes])
    for i, c in enumerate(classes):
        others = (means.sum(axis=0) - means[i]) / (len(classes) - 1)
        idx = np.flatnonzero(y == c)
        p = prob[idx, i][:, None]
        x[idx] = p * x[idx] + (1 - p) * others
    prob, _ = fit_predict(x, lam)
    codes = np.searchsorted(classes, y)
    return prob[np.arange(n), codes].mean()


def slow_gbc(f, y, gaussian, pca_dim):
    if pca_dim is not None:
        f = PCA(n_components=min(pca_dim, *f.shape), svd_solver="full").fit_transform(f)
    classes = np.unique(y)
    stats = []
    for c in classes:
        fc = f[y == c]
        var = np.maximum(fc.var(axis=0), 1e-4) if gaussian == "diagonal" else np.full(
            f.shape[1], max(fc.var(axis=0).mean(), 1e-4))
        stats.append((fc.mean(axis=0), var))
    total = 0.0
    for i in range(len(classes)):
        for j in range(len(classes)):
            if i == j:
                continue
            (m1, v1), (m2, v2) = stats[i], stats[j]
            avg = (v1 + v2) / 2
            db = 0.125 * np.sum((m1 - m2) ** 2 / avg) + 0.5 * np.sum(np.log(avg) - 0.5 * np.log(v1) - 0.5 * np.log(v2))
            if gaussian == "spherical_google":  # google: one log term for the scalar variance
                db = 0.125 * np.sum((m1 - m2) ** 2 / avg) + 0.5 * (np.log(avg[0]) - 0.5 * np.log(v1[0]) - 0.5 * np.log(v2[0]))
            total += np.exp(-db)
    return -total


# ---------------------------------------------------------------- comparisons
SIZES = [(90, 5, 3), (30, 50, 3)]  # N > D and D > N


@pytest.mark.parametrize(("n", "d", "c"), SIZES)
def test_hscore_matches_slow(n, d, c):
    f, y = make_classification(n=n, d=d, c=c, seed=10)
    assert hscore(f, y) == pytest.approx(slow_hscore(f, y), rel=1e-7)


def test_hscore_saturates_at_c_minus_1_when_d_ge_n():
    f, y = make_classification(n=20, d=40, c=4, seed=11)
    assert hscore(f, y) == pytest.approx(3.0, rel=1e-8)


def test_hscore_closed_form_two_points_per_class():
    # 1-D: cov_f = var(f), cov_g = var of class means placed at samples.
    f = np.array([[0.0], [2.0], [10.0], [12.0]])
    y = [0, 0, 1, 1]
    var_f = np.var(f[:, 0], ddof=1)
    var_g = np.var([1.0, 1.0, 11.0, 11.0], ddof=1)
    assert hscore(f, y) == pytest.approx(var_g / var_f, rel=1e-12)


@pytest.mark.parametrize(("n", "d", "c"), SIZES)
def test_hscore_shrinkage_matches_slow(n, d, c):
    f, y = make_classification(n=n, d=d, c=c, seed=12)
    assert hscore_shrinkage(f, y) == pytest.approx(slow_hscore_shrinkage(f, y), rel=1e-7)


def test_ledoit_wolf_from_gram_equals_sklearn():
    f, _ = make_classification(n=50, d=7, seed=13)
    fc = f - f.mean(axis=0)
    t = torch.from_numpy(fc)
    assert lw_from_gram(t, t.T @ t) == pytest.approx(ledoit_wolf_shrinkage(fc), rel=1e-10)


def test_hscore_shrinkage_does_not_saturate_d_gt_n():
    f, y = make_classification(n=20, d=40, c=4, seed=11)
    assert 0 < hscore_shrinkage(f, y) < 3.0


@pytest.mark.parametrize(("n", "d", "c"), SIZES)
def test_transrate_matches_slow(n, d, c):
    f, y = make_classification(n=n, d=d, c=c, seed=14)
    assert transrate(f, y) == pytest.approx(slow_transrate(f, y), rel=1e-9)
    assert transrate(f, y, eps=0.5) == pytest.approx(slow_transrate(f, y, eps=0.5), rel=1e-9)


def test_transrate_closed_form_1d():
    # d = 1: R(z) = ½ log(1 + Σz²/(nε)).
    f = np.array([[-3.0], [-1.0], [1.0], [3.0]])
    y = [0, 0, 1, 1]
    eps = 1.0
    r = 0.5 * np.log(1 + 20 / 4)
    rc = 0.5 * np.log(1 + 10 / 2)  # each class: (9 + 1) / (2 ε)
    assert transrate(f, y, eps=eps) == pytest.approx(r - rc, rel=1e-12)


@pytest.mark.parametrize(("n", "d", "c"), [(90, 5, 3), (60, 8, 4)])
def test_sfda_matches_slow(n, d, c):
    f, y = make_classification(n=n, d=d, c=c, seed=15, sep=0.6)
    assert sfda(f, y) == pytest.approx(slow_sfda(f, y), rel=1e-7)


def test_sfda_saturates_for_d_gt_n():
    f, y = make_classification(n=20, d=60, c=3, seed=16)
    assert sfda(f, y) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("gaussian", ["diagonal", "spherical", "spherical_google"])
@pytest.mark.parametrize("pca_dim", [None, 3])
def test_gbc_matches_slow(gaussian, pca_dim):
    f, y = make_classification(n=90, d=6, c=3, seed=17, sep=0.4)
    assert gbc(f, y, gaussian=gaussian, pca_dim=pca_dim) == pytest.approx(
        slow_gbc(f, y, gaussian, pca_dim), rel=1e-8, abs=1e-12)


def test_gbc_spherical_full_d_term_differs_from_google():
    rng = np.random.default_rng(18)
    y = np.repeat([0, 1], 40)
    f = rng.normal(size=(80, 10)) * np.where(y == 0, 1.0, 3.0)[:, None]  # same means, different spreads
    full = gbc(f, y, gaussian="spherical", pca_dim=None)
    google = gbc(f, y, gaussian="spherical_google", pca_dim=None)
    assert full > google  # the full D-term separates the classes more (less overlap)


def test_gbc_closed_form_two_gaussians():
    # Two classes, 1-D, variances 1 each, means 0 and 2: D_B = 1/8 · 4 / 1 = 0.5; GBC = -2 e^{-0.5}.
    f = np.array([[-1.0], [1.0], [1.0], [3.0]])
    assert gbc(f, [0, 0, 1, 1], pca_dim=None) == pytest.approx(-2 * np.exp(-0.5), rel=1e-12)


def test_pca_project_matches_sklearn_up_to_sign():
    f, _ = make_classification(n=40, d=6, seed=19)
    ours = pca_project(torch.from_numpy(f), 3).numpy()
    ref = PCA(n_components=3, svd_solver="covariance_eigh").fit_transform(f)
    signs = np.sign(np.sum(ours * ref, axis=0))
    np.testing.assert_allclose(ours * signs, ref, atol=1e-9)


@pytest.mark.parametrize("fn", [hscore, hscore_shrinkage, transrate, sfda, gbc])
def test_constant_and_duplicate_columns_are_finite(fn):
    f, y = make_classification(n=40, d=4, seed=20)
    f = np.hstack([f, f[:, :1], np.full((40, 1), 3.0)])
    assert np.isfinite(fn(f, y))


@pytest.mark.parametrize("fn", [hscore, hscore_shrinkage, transrate, gbc])
def test_one_sample_class_is_finite(fn):
    f, y = make_classification(n=31, d=3, seed=21)
    y = y.copy()
    y[0] = 7  # a class with a single sample
    assert np.isfinite(fn(f, y))


@pytest.mark.parametrize("fn", [hscore, hscore_shrinkage, transrate, gbc])
def test_rotation_and_scale(fn):
    f, y = make_classification(n=60, d=4, seed=22)
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(4, 4)))
    base = fn(f, y)
    if fn in (hscore,):
        assert fn(f @ q * 3.0, y) == pytest.approx(base, rel=1e-8)  # affine invariant
    if fn is hscore_shrinkage:
        assert fn(f @ q * 3.0, y) == pytest.approx(base, rel=1e-8)  # shrinkage target is isotropic
    if fn is transrate:
        assert fn(f @ q, y) == pytest.approx(base, rel=1e-9)
    if fn is gbc:
        assert fn(f @ q, y, gaussian="spherical") == pytest.approx(gbc(f, y, gaussian="spherical"), rel=1e-8)
