"""PACTran Dirichlet / Gamma / Gaussian: direct formulas, closed forms, direction, golden values.

Conventions of the golden comparisons: float64 up-cast features, source probabilities =
softmax(float64 logits), the reference seeded with ``np.random.seed(0)`` right before each call — here
``random_state=0`` draws the same initial W (``RandomState(0).normal``). Tolerance 1e-9 relative (the
same L-BFGS-B run on the same function; observed ≤ 3e-12).
"""

import math
import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.special
from conftest import make_classification, make_probs
from reference_cases import GOLDEN, make_case

from app.transferability import ConvergenceWarning, pactran_dirichlet, pactran_gamma, pactran_gaussian
from app.transferability.pactran import _gauss_terms

GOLD_REL = 1e-9


def onehot(y):
    return (y[:, None] == np.unique(y)[None, :]).astype(float)


# ------------------------------------------------------------------------------------ slow references
def slow_dir(s, y, alpha=1.0, iters=10):
    """The Dirichlet bound from its definition, with the explicit (N, C, Cs) joint tensor."""
    yy = onehot(y)
    n, c = yy.shape
    a0 = alpha * yy.sum(0)[:, None] / n + 1e-10
    q, log_s = s, np.log(s + 1e-10)
    for _ in range(iters):
        a = a0 + np.einsum("ny,nz->nyz", yy, q).sum(axis=0)
        logits = log_s + yy @ scipy.special.digamma(a) - scipy.special.digamma(a.sum(axis=0))[None, :]
        log_q = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
        q = np.exp(log_q)
    total = 0.0
    for z in range(s.shape[1]):
        log_b0 = math.lgamma(a0.sum()) - sum(math.lgamma(v) for v in a0[:, 0])
        log_bz = math.lgamma(a[:, z].sum()) - sum(math.lgamma(v) for v in a[:, z])
        total += log_b0 - log_bz - sum(q[i, z] * (log_q[i, z] - log_s[i, z]) for i in range(n))
    return -total / (n * c)


def slow_gamma(s, y, alpha=1.0, iters=10):
    yy = onehot(y)
    n, c = yy.shape
    a0 = alpha * yy.sum(0)[:, None] / n + 1e-10
    q, log_s = s, np.log(s + 1e-10)
    for _ in range(iters):
        a = a0 + np.einsum("ny,nz->nyz", yy, q).sum(axis=0)
        lw = np.array([s[i] @ a.sum(axis=0) for i in range(n)])
        logits = log_s + yy @ scipy.special.digamma(a)
        log_q = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
        q = np.exp(log_q)
    prior = sum(math.lgamma(a0[k, 0]) - math.lgamma(a[k, z]) for k in range(c) for z in range(s.shape[1]))
    samples = sum(np.sum(q[i] * (log_q[i] - log_s[i])) + math.log(lw[i]) - 1.0 for i in range(n))
    return (prior + samples) / (n * c) + 1.0


def slow_gauss(f, y, lda_factor, s2, max_iter=100, seed=0):
    """PAC-Gauss with separate loss / gradient / elementwise-Hessian functions on the one-hot matrix."""
    x = f - f.mean(axis=0)
    yy = onehot(y)
    n, d = x.shape
    c = yy.shape[1]
    ldas2 = lda_factor * n

    def split(t):
        t = t.reshape(d + 1, c)
        return t[:d], t[d:]

    def loss(t):
        w, b = split(t)
        z = x @ w + b
        log_q = z - scipy.special.logsumexp(z, axis=1, keepdims=True)
        return np.sum(yy * (np.log(yy + 1e-10) - log_q)) / n + 0.5 * np.sum(w**2) / ldas2

    def grad(t):
        w, b = split(t)
        g = (scipy.special.softmax(x @ w + b, axis=1) - yy) / n
        return np.concatenate([x.T @ g + w / ldas2, g.sum(axis=0, keepdims=True)]).ravel()

    t0 = np.concatenate([np.random.RandomState(seed).normal(size=(d, c)) * 0.03, np.zeros((1, c))]).ravel()
    t = scipy.optimize.minimize(loss, t0, jac=grad, method="L-BFGS-B", options=dict(maxiter=max_iter), tol=1e-6).x
    w, b = split(t)
    p = scipy.special.softmax(x @ w + b, axis=1)
    h = np.concatenate([(x**2).T @ (p - p**2) + 1 / ldas2, (p - p**2).sum(axis=0, keepdims=True)])
    sigma2_inv = h.sum() * ldas2 / (d * c) + 1e-10
    return loss(t) + 0.5 * d * c / ldas2 * (s2 / d) * np.log(sigma2_inv), loss(t)


# ------------------------------------------------------------------------------------- comparisons
@pytest.mark.parametrize(("n", "cs", "c"), [(60, 5, 3), (40, 12, 4)])
def test_dirichlet_and_gamma_match_definitions(n, cs, c):
    p, y = make_probs(n=n, cs=cs, c=c, seed=70)
    assert pactran_dirichlet(p, y) == pytest.approx(slow_dir(p, y), rel=1e-11)
    assert pactran_gamma(p, y) == pytest.approx(slow_gamma(p, y), rel=1e-11)
    assert pactran_dirichlet(p, y, alpha=3.0, n_iter=4) == pytest.approx(slow_dir(p, y, 3.0, 4), rel=1e-11)
    assert pactran_gamma(p, y, alpha=0.5, n_iter=2) == pytest.approx(slow_gamma(p, y, 0.5, 2), rel=1e-11)


def test_dirichlet_closed_form_uniform_head():
    # With a uniform source head q stays uniform, a = a0 + n_c/Cs per source class, KL(q‖s) = 0 up to
    # the ε inside log(s + ε).
    n, cs = 30, 4
    y = np.repeat([0, 1, 2], [5, 10, 15])
    s = np.full((n, cs), 1 / cs)
    counts = np.array([5, 10, 15.0])
    a0 = counts / n + 1e-10
    a = a0 + counts / cs
    log_b = lambda v: math.lgamma(v.sum()) - sum(math.lgamma(t) for t in v)  # noqa: E731
    kl = n * np.sum(s[0] * (np.log(s[0]) - np.log(s[0] + 1e-10)))
    expected = -(cs * (log_b(a0) - log_b(a)) - kl) / (n * 3)
    assert pactran_dirichlet(s, y) == pytest.approx(expected, rel=1e-12)


def test_better_source_head_gives_lower_bounds():
    rng = np.random.default_rng(71)
    y = np.repeat(np.arange(4), 25)
    good = np.full((100, 8), 0.02)
    good[np.arange(100), y * 2] = 1 - 0.02 * 7
    bad = scipy.special.softmax(rng.normal(size=(100, 8)), axis=1)
    assert pactran_dirichlet(good, y) < pactran_dirichlet(bad, y)
    assert pactran_gamma(good, y) < pactran_gamma(bad, y)
    f_good = np.eye(4)[y] * 3.0 + rng.normal(size=(100, 4)) * 0.3
    f_bad = rng.normal(size=(100, 4))
    assert pactran_gaussian(f_good, y, s2=10.0) < pactran_gaussian(f_bad, y, s2=10.0)


@pytest.mark.parametrize(("lda", "s2"), [(1.0, 100.0), (10.0, 1000.0), (0.1, 1.0)])
def test_gaussian_matches_direct_optimisation(lda, s2):
    f, y = make_classification(n=80, d=6, c=3, seed=72, sep=0.8)
    ref, ref_opt = slow_gauss(f, y, lda, s2)
    assert pactran_gaussian(f, y, lda_factor=lda, s2=s2) == pytest.approx(ref, rel=1e-7)
    opt = _gauss_terms(f - f.mean(0), np.searchsorted(np.unique(y), y), 3, lda, 100, 0)[0]
    assert opt == pytest.approx(ref_opt, rel=1e-7)


def test_gaussian_invariant_to_permutation_and_renaming_up_to_the_optimiser():
    f, y = make_classification(n=80, d=5, c=3, seed=73)
    base = pactran_gaussian(f, y)
    perm = np.random.default_rng(2).permutation(80)
    # L-BFGS-B stops at ftol 1e-6 (the reference's tol): a different start (renamed classes permute the
    # columns of the seeded initial W) moves the bound by ~4e-5 relative
    assert pactran_gaussian(f[perm], y[perm]) == pytest.approx(base, rel=1e-4)
    assert pactran_gaussian(f, np.array(["z", "a", "m"])[y]) == pytest.approx(base, rel=1e-4)


@pytest.mark.parametrize("case", ["small", "imbalanced"])
def test_golden(case):
    d, g = make_case(case), GOLDEN[case]
    f, y = d["features"].astype(np.float64), d["labels"]
    p = scipy.special.softmax(d["source_logits"].astype(np.float64), axis=1)
    assert pactran_dirichlet(p, y) == pytest.approx(g["pactran_dirichlet.google"], rel=GOLD_REL)
    assert pactran_gamma(p, y) == pytest.approx(g["pactran_gamma.google"], rel=GOLD_REL)
    codes = np.searchsorted(np.unique(y), y)
    for lda, s2s in ((10, (1000, 100)), (1, (100, 10)), (0.1, (10, 1))):
        for s2 in s2s:
            assert pactran_gaussian(f, y, lda_factor=lda, s2=s2) == pytest.approx(
                g[f"pactran_gauss.google[lda={lda},s2={s2}]"], rel=GOLD_REL)
        opt = _gauss_terms(f - f.mean(0), codes, len(np.unique(y)), float(lda), 100, 0)[0]
        assert opt == pytest.approx(g[f"pactran_gauss_opt.google[lda={lda}]"], rel=GOLD_REL)


@pytest.mark.parametrize("case", ["small", "imbalanced"])
def test_etran_copy_is_the_10_iteration_variant(case):
    # ETran's PAC_Score (and EMMS's copy) runs L-BFGS-B for 10 iterations instead of 100: max_iter=10.
    d = make_case(case)
    with pytest.warns(ConvergenceWarning, match="stopped after 10 iterations"):
        value = pactran_gaussian(d["features"].astype(np.float64), d["labels"], max_iter=10)
    assert value == pytest.approx(GOLDEN[case]["pactran_gauss.etran_repo[lda=1]"], rel=1e-9)


def test_degenerate_inputs():
    p, y = make_probs(n=30, cs=4, c=3)
    with pytest.raises(ValueError, match="logits are not accepted"):
        pactran_dirichlet(np.log(p), y)
    with pytest.raises(ValueError, match="sum to 1"):
        pactran_gamma(p * 2, y)
    with pytest.raises(ValueError, match="distinct classes"):
        pactran_dirichlet(p, np.zeros(30))
    with pytest.raises(ValueError, match="alpha"):
        pactran_dirichlet(p, y, alpha=0)
    with pytest.raises(ValueError, match="lda_factor"):
        pactran_gaussian(p, y, lda_factor=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConvergenceWarning):
            pactran_gaussian(*make_classification(n=60, d=5, c=3), max_iter=1)
