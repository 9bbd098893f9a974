"""H-score (Bao et al.) and its Ledoit–Wolf shrinkage form (Ibrahim et al.); higher is better."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._inputs import as_array, as_numpy_matrix, encode_labels
from ._linalg import center_, class_sums, codes_like, counts_like, eigh, gram, xp_of
from ._resample import drawn_rows, weighted_gram

__all__ = ["hscore", "hscore_shrinkage", "hscore_resampled", "hscore_shrinkage_resampled", "ledoit_wolf_shrinkage"]


def _between_factor(fc, codes, counts):
    """M (C, d) with MᵀM = Σ_c n_c (μ_c − μ)(μ_c − μ)ᵀ, for column-centred features ``fc``."""
    sums = class_sums(fc, codes, counts.shape[0])
    return sums / xp_of(counts).sqrt(counts)[:, None]


def _trace_pinv_product(s, v, m, rcond: float):
    """tr(pinv(V diag(s) Vᵀ) · MᵀM), with numpy.linalg.pinv's cutoff |s| > rcond · max|s|."""
    a = xp_of(s).abs(s)
    keep = a > rcond * a.max()
    w = m @ v[:, keep]
    return ((w * w).sum(axis=0) / s[keep]).sum()


def hscore(features, labels, *, rcond: float = 1e-15) -> float:
    r"""H-score: :math:`\operatorname{tr}(\operatorname{cov}(f)^{+}\operatorname{cov}(E[f\mid y]))`.

    The matrix-product form of Bao et al. (as in ``tllib/ranking/hscore.py::h_score`` and the paper's
    README), with the Moore–Penrose pseudo-inverse of the feature covariance. Computed from one
    eigendecomposition of the centred Gram matrix; ``cov(E[f|y])`` is never materialised as an (n, d)
    array. Range ``[0, C-1]``. With ``D >= N`` (or otherwise rank-deficient features) the score saturates
    at ``C-1`` and cannot rank models; prefer :func:`hscore_shrinkage` there.

    Parameters
    ----------
    features : array-like or Tensor of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
        Class labels, re-encoded to 0..C-1.
    rcond : float, default=1e-15
        Relative cutoff of the pseudo-inverse, as ``numpy.linalg.pinv(cov, rcond=1e-15)`` in the reference.

    Returns
    -------
    score : float
        Higher is better.

    References
    ----------
    .. [1] Bao, Li, Huang, Zhang, Zheng, Zamir, Guibas. "An Information-Theoretic Approach to
       Transferability in Task Transfer Learning", ICIP 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import hscore
    >>> f = np.array([[0.0, 1.0], [1.0, 0.0], [4.0, 1.0], [5.0, 2.0]])
    >>> round(hscore(f, [0, 0, 1, 1]), 4)
    0.9444
    """
    f = as_array(features, "features", owned=True)
    enc = encode_labels(labels, f.shape[0])
    codes = codes_like(enc, f)
    counts = counts_like(enc, f)
    center_(f)
    fc = f
    s, v = eigh(gram(fc))
    m = _between_factor(fc, codes, counts)
    return float(_trace_pinv_product(s, v, m, rcond))


def ledoit_wolf_shrinkage(fc, g) -> float:
    """Ledoit–Wolf shrinkage of ``sklearn.covariance.ledoit_wolf_shrinkage`` from a centred matrix.

    Uses the Gram matrix ``g = fcᵀfc`` that the caller already has: scikit-learn's
    ``Σ (X²)ᵀ(X²)`` equals ``Σ_i ‖x_i‖⁴`` and its ``Σ (XᵀX)²`` is ``‖g‖_F²``, so no second and third
    O(n·d²) product is needed. Equal to scikit-learn's value (tested).
    """
    n, d = fc.shape
    if d == 1:
        return 0.0
    xp = xp_of(fc)
    row_sq = xp.einsum("ij,ij->i", fc, fc)  # no n×d temporary
    return _ledoit_wolf(g, (row_sq * row_sq).sum(), n)


def _ledoit_wolf(g, beta_, n: int) -> float:
    """The shrinkage from the centred Gram matrix ``g`` and ``beta_ = Σ_i ‖x_i‖⁴`` of ``n`` centred rows."""
    xp = xp_of(g)
    d = g.shape[0]
    if d == 1:
        return 0.0
    emp_cov_trace = xp.diagonal(g) / n
    mu = emp_cov_trace.sum() / d
    delta_ = (g * g).sum() / n**2
    beta = 1.0 / (d * n) * (beta_ / n - delta_)
    delta = (delta_ - 2.0 * mu * emp_cov_trace.sum() + d * mu**2) / d
    beta = min(float(beta), float(delta))
    return 0.0 if float(beta) == 0.0 else float(beta / delta)


def hscore_shrinkage(features, labels, *, rcond: float = 1e-15) -> float:
    r"""Regularised H-score with a Ledoit–Wolf shrunk feature covariance.

    :math:`H_\alpha = \operatorname{tr}(\Sigma_\alpha^{+}\,(1-\alpha)\operatorname{cov}(E[f\mid y]))`
    with :math:`\Sigma_\alpha = (1-\alpha)S + \alpha\frac{\operatorname{tr}S}{D}I` the Ledoit–Wolf
    estimate of the (1/N) covariance of the centred features and :math:`\alpha` its shrinkage, as in
    ``tllib/ranking/hscore.py::regularized_h_score`` (including its 1/N vs 1/(N−1) mix of covariance
    normalisations). The shrinkage is scikit-learn's Ledoit–Wolf formula, evaluated from the Gram matrix
    (:func:`ledoit_wolf_shrinkage`). Unlike :func:`hscore` it does not saturate when ``D >= N``.

    Parameters
    ----------
    features : array-like or Tensor of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    rcond : float, default=1e-15
        Relative pseudo-inverse cutoff (the shrunk covariance is normally full rank).

    Returns
    -------
    score : float
        Higher is better.

    References
    ----------
    .. [1] Ibrahim, Ponomareva, Mazumder. "Newer is not always better: Rethinking transferability
       metrics, their peculiarities, stability and performance", arXiv:2110.06893.
    .. [2] Ledoit, Wolf. "A well-conditioned estimator for large-dimensional covariance matrices",
       J. Multivariate Analysis 2004.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import hscore_shrinkage
    >>> f = np.array([[0.0, 1.0], [1.0, 0.0], [4.0, 1.0], [5.0, 2.0]])
    >>> round(hscore_shrinkage(f, [0, 0, 1, 1]), 4)
    1.1286
    """
    f = as_array(features, "features", owned=True)
    enc = encode_labels(labels, f.shape[0])
    codes = codes_like(enc, f)
    counts = counts_like(enc, f)
    n, d = f.shape
    center_(f)
    fc = f
    g = gram(fc)
    alpha = ledoit_wolf_shrinkage(fc, g)
    s, v = eigh(g)
    # Eigenvalues of Σ_α share the eigenvectors of S = g / n.
    mu = xp_of(g).diagonal(g).sum() / (n * d)
    s_alpha = (1.0 - alpha) * s / n + alpha * mu
    m = _between_factor(fc, codes, counts)
    # cov(E[f|y]) uses 1/(N−1), as np.cov in the reference.
    return float((1.0 - alpha) * _trace_pinv_product(s_alpha, v, m, rcond) / (n - 1))


def _centred_resample(xc0, codes, classes, counts):
    """(drawn, centred Gram, between-class factor M, the drawn rows centred at the resample's mean) of the
    materialised resample, from rows ``xc0`` centred at the full sample's mean (which keeps the Gram's
    cancellation small: the resample's mean is close to it)."""
    drawn = drawn_rows(counts, codes, xc0.shape[0], classes=classes)
    x, w, n = xc0[drawn.rows], drawn.weights, drawn.n
    shift = (w @ x) / n
    g = weighted_gram(x, w) - n * np.outer(shift, shift)
    sums = class_sums(x, drawn.codes, drawn.n_classes, weights=w) - drawn.class_counts[:, None] * shift
    return drawn, g, sums / np.sqrt(drawn.class_counts)[:, None], x - shift


def _prepared(features, labels):
    x = as_numpy_matrix(features, "features")
    enc = encode_labels(labels, x.shape[0])
    return x - x.mean(axis=0), enc


def hscore_resampled(features, labels, *, rcond: float = 1e-15) -> Callable[[np.ndarray], float]:
    """The bootstrap kernel of :func:`hscore`: ``kernel(counts)`` equals ``hscore(features[idx],
    labels[idx])`` for every ``idx`` with ``np.bincount(idx) == counts``, up to rounding — from the
    weighted centred Gram matrix and weighted class sums."""
    xc0, enc = _prepared(features, labels)

    def kernel(counts: np.ndarray) -> float:
        _, g, m, _ = _centred_resample(xc0, enc.codes, enc.classes, counts)
        s, v = eigh(g)
        return float(_trace_pinv_product(s, v, m, rcond))

    return kernel


def hscore_shrinkage_resampled(features, labels, *, rcond: float = 1e-15) -> Callable[[np.ndarray], float]:
    """The bootstrap kernel of :func:`hscore_shrinkage` (as :func:`hscore_resampled`; the Ledoit–Wolf
    shrinkage's ``Σ‖x_i‖⁴`` is a weighted sum over the drawn rows)."""
    xc0, enc = _prepared(features, labels)
    d = xc0.shape[1]

    def kernel(counts: np.ndarray) -> float:
        drawn, g, m, xc = _centred_resample(xc0, enc.codes, enc.classes, counts)
        n = drawn.n
        row_sq = np.einsum("ij,ij->i", xc, xc)
        alpha = _ledoit_wolf(g, (drawn.weights * row_sq * row_sq).sum(), n)
        s, v = eigh(g)
        s_alpha = (1.0 - alpha) * s / n + alpha * np.trace(g) / (n * d)
        return float((1.0 - alpha) * _trace_pinv_product(s_alpha, v, m, rcond) / (n - 1))

    return kernel
