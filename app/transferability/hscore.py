"""H-score (Bao et al.) and its Ledoit–Wolf shrinkage form (Ibrahim et al.); higher is better."""

from __future__ import annotations

from ._inputs import as_array, encode_labels
from ._linalg import center_, class_sums, codes_like, counts_like, eigh, gram, xp_of

__all__ = ["hscore", "hscore_shrinkage", "ledoit_wolf_shrinkage"]


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
    emp_cov_trace = xp.diagonal(g) / n
    mu = emp_cov_trace.sum() / d
    beta_ = (row_sq * row_sq).sum()
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
