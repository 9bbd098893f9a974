"""LogME against direct evidence maximisation on the full D×D determinant."""

import math
import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.stats
from conftest import make_classification

from app.transferability import ConvergenceWarning, logme


def evidence_full(f, t, alpha, beta):
    """Evidence of one column, straight from the definition (D×D matrices, no eigen tricks)."""
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.solve(a, f.T @ t)
    sign, logdet = np.linalg.slogdet(a)
    assert sign > 0
    res = np.sum((f @ m - t) ** 2)
    return (
        d / 2 * math.log(alpha) + n / 2 * math.log(beta) - 0.5 * logdet - beta / 2 * res
        - alpha / 2 * (m @ m) - n / 2 * math.log(2 * math.pi)
    )


def slow_logme(f, targets):
    """Maximise the evidence over (log α, log β) with scipy, per column; mean of L/N."""
    n = f.shape[0]
    out = []
    for j in range(targets.shape[1]):
        t = targets[:, j]

        def neg(p, t=t):
            return -evidence_full(f, t, math.exp(p[0]), math.exp(p[1]))

        best = min(
            (scipy.optimize.minimize(neg, x0, method="Nelder-Mead",
                                     options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000})
             for x0 in ([0.0, 0.0], [2.0, -2.0], [-2.0, 2.0])),
            key=lambda r: r.fun,
        )
        out.append(-best.fun / n)
    return float(np.mean(out))


def onehot(y):
    classes = np.unique(y)
    return (y[:, None] == classes[None, :]).astype(float)


def test_evidence_formula_matches_marginal_likelihood():
    # Independent check of the oracle itself: t ~ N(0, β⁻¹I + α⁻¹FFᵀ).
    f, y = make_classification(n=30, d=4)
    t = (y == 0).astype(float)
    alpha, beta = 0.7, 2.3
    cov = np.eye(30) / beta + f @ f.T / alpha
    ref = scipy.stats.multivariate_normal(mean=np.zeros(30), cov=cov).logpdf(t)
    assert evidence_full(f, t, alpha, beta) == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize(("n", "d"), [(60, 5), (20, 40)])
def test_matches_direct_maximisation(n, d):
    f, y = make_classification(n=n, d=d, c=3, seed=1)
    # With D > N a class can be fitted exactly and its evidence is maximised at β → ∞ (a supremum the
    # iteration approaches from below), hence the absolute tolerance.
    assert logme(f, y) == pytest.approx(slow_logme(f, onehot(y)), rel=1e-6, abs=1e-5 if d > n else 1e-9)


def test_regression_matches_direct_maximisation():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(50, 4))
    t = f @ rng.normal(size=(4, 2)) + 0.3 * rng.normal(size=(50, 2))
    assert logme(f, t, regression=True) == pytest.approx(slow_logme(f, t), rel=1e-6)


def test_rank_deficient_duplicate_columns_use_full_d():
    f, y = make_classification(n=40, d=3, seed=2)
    f_dup = np.hstack([f, f[:, :1], np.zeros((40, 1))])  # rank 3 < D = 5
    assert logme(f_dup, y) == pytest.approx(slow_logme(f_dup, onehot(y)), rel=1e-6)


def slow_thuml_fixed_point(f, y):
    """The thuml/LogME fixed-point recipe written as a plain loop (SVD of F)."""
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    keep = s > 1e-10 if n > d else np.ones_like(s, dtype=bool)
    u, sigma = u[:, keep], s[keep] ** 2
    out = []
    for c in np.unique(y):
        t = (y == c).astype(float)
        x2 = (u.T @ t) ** 2
        res_x2 = t @ t - x2.sum()
        alpha = beta = 1.0
        for _ in range(11):
            lam = alpha / beta
            gamma = np.sum(sigma / (sigma + lam))
            m2 = np.sum(sigma * x2 / (lam + sigma) ** 2)
            res2 = np.sum(x2 / (1 + sigma / lam) ** 2) + res_x2
            alpha = gamma / (m2 + 1e-5)
            beta = (n - gamma) / (res2 + 1e-5)
            if abs(alpha / beta - lam) / lam <= 1e-3:
                break
        ev = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * np.sum(np.log(alpha + beta * sigma))
              - beta / 2 * res2 - alpha / 2 * m2 - n / 2 * np.log(2 * np.pi))
        out.append(ev / n)
    return float(np.mean(out))


@pytest.mark.parametrize(("n", "d"), [(80, 6), (30, 64)])
def test_thuml_variant_reproduces_fixed_point_code(n, d):
    f, y = make_classification(n=n, d=d, seed=4)
    assert logme(f, y, variant="thuml_fixed_point") == pytest.approx(slow_thuml_fixed_point(f, y), rel=1e-8)


def test_thuml_variant_overestimates_when_d_exceeds_n():
    f, y = make_classification(n=30, d=200, seed=5)
    full, thuml = logme(f, y), logme(f, y, variant="thuml_fixed_point")
    assert thuml > full + 1.0  # pitfall 1: the dropped -(D-k)/2 log α term
    f, y = make_classification(n=200, d=5, seed=5)
    assert logme(f, y, variant="thuml_fixed_point") == pytest.approx(logme(f, y), abs=1e-3)


def test_invariances():
    f, y = make_classification(n=60, d=5, seed=6)
    base = logme(f, y)
    perm = np.random.default_rng(0).permutation(60)
    assert logme(f[perm], y[perm]) == pytest.approx(base, rel=1e-9)
    assert logme(f, np.array(["z", "b", "q"])[y]) == pytest.approx(base, rel=1e-9)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(5, 5)))
    assert logme(f @ q, y) == pytest.approx(base, rel=1e-7)  # w ~ N(0, α⁻¹I) is rotation invariant


def test_d_greater_than_n_is_finite():
    f, y = make_classification(n=15, d=100, seed=7)
    assert np.isfinite(logme(f, y))


def test_warns_when_not_converged():
    f, y = make_classification(n=60, d=5, seed=8)
    with pytest.warns(ConvergenceWarning):
        logme(f, y, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logme(f, y)


def test_errors():
    f, y = make_classification(n=20, d=3)
    with pytest.raises(ValueError, match="at least 2 distinct classes"):
        logme(f, np.zeros(20))
    with pytest.raises(ValueError, match="identically zero"):
        logme(f, np.zeros((20, 2)), regression=True)
    with pytest.raises(ValueError, match="variant"):
        logme(f, y, variant="nope")
    with pytest.raises(ValueError, match="20 rows"):
        logme(f, np.zeros((19, 1)), regression=True)
