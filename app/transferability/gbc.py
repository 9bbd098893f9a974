"""GBC: Gaussian Bhattacharyya coefficient class separability (Pándy et al., CVPR 2022); higher is better."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._inputs import as_array, as_numpy_matrix, encode_labels
from ._linalg import center_, centered, class_sums, codes_like, counts_like, eigh, gram, to_numpy, xp_of
from ._resample import drawn_rows, weighted_gram

__all__ = ["gbc", "gbc_resampled", "pca_project"]

_GAUSSIANS = ("diagonal", "spherical", "spherical_google")
_VARIANCE_FLOOR = 1e-4  # tf.maximum(variance, 1e-4) in the reference


def pca_project(x, n_components: int):
    """Scores of the first ``n_components`` principal components (covariance eigendecomposition).

    Same subspace and values as ``sklearn.decomposition.PCA(svd_solver="covariance_eigh")`` up to the
    sign of each component (tested); runs on the input's device.
    """
    return _pca_scores_of_centred(centered(x), n_components)


def _pca_scores_of_centred(xc, n_components: int):
    s, v = eigh(gram(xc))
    top = xp_of(v).flip(v[:, -n_components:], (1,))
    # a contiguous copy: numpy's product of a reversed (negative-stride) view is a slow non-BLAS loop
    return xc @ (np.ascontiguousarray(top) if xp_of(top) is np else top.contiguous())


def gbc(features, labels, *, gaussian: str = "diagonal", pca_dim: int | None = 64) -> float:
    r"""Gaussian Bhattacharyya Coefficient: :math:`-\sum_{c\neq c'} e^{-D_B(c,c')}`.

    A Gaussian with diagonal (or spherical) covariance is fitted to each class (biased variances floored
    at 1e-4, as in the reference) after an optional PCA, and the Bhattacharyya distance

    .. math:: D_B = \tfrac18\sum_d \frac{(\mu_{c,d}-\mu_{c',d})^2}{\bar\sigma_d}
        + \tfrac12\sum_d \log\frac{\bar\sigma_d}{\sqrt{\sigma_{c,d}\sigma_{c',d}}},
        \quad \bar\sigma = \tfrac{\sigma_c+\sigma_{c'}}2

    is summed as overlap over all ordered class pairs. Range ``[-C(C-1), 0]``; 0 means fully separable
    classes (it saturates there). Mirrors ``google-research: stable_transfer/transferability/gbc.py``.

    ``gaussian="spherical"`` uses one variance per class (the mean of its per-dimension variances) and
    keeps the full covariance term :math:`\tfrac{D}{2}\log(\bar\sigma/\sqrt{\sigma_c\sigma_{c'}})` of the
    true spherical Bhattacharyya distance. **This differs from the google-research code**, which reduces
    the variance to a scalar *before* its generic distance function and so sums a single log instead of
    ``D`` identical ones (the covariance term is under-weighted by a factor ``D``). The reference's number
    is available as ``gaussian="spherical_google"`` for comparison.

    Parameters
    ----------
    features : array-like or Tensor of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    gaussian : {"diagonal", "spherical", "spherical_google"}, default="diagonal"
    pca_dim : int or None, default=64
        Project onto the first ``min(pca_dim, n_samples, n_features)`` principal components first (the
        paper's setting is 64); ``None`` keeps the features as given.

    Returns
    -------
    score : float
        In ``[-C(C-1), 0]``; higher is better.

    References
    ----------
    .. [1] Pándy, Agostinelli, Uijlings, Ferrari, Mensink. "Transferability Estimation using Bhattacharyya
       Class Separability", CVPR 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import gbc
    >>> f = np.array([[0.0, 1.0], [1.0, 0.0], [4.0, 1.0], [5.0, 2.0]])
    >>> round(gbc(f, [0, 0, 1, 1], pca_dim=None), 4)
    -0.0004
    """
    _check_options(gaussian, pca_dim)
    x = as_array(features, "features", owned=pca_dim is not None)
    enc = encode_labels(labels, x.shape[0])
    codes = codes_like(enc, x)
    counts = counts_like(enc, x)
    if pca_dim is not None:
        center_(x)  # our own copy: no second n×d array
        x = _pca_scores_of_centred(x, min(pca_dim, *x.shape))
    return _gbc_of(x, codes, enc.n_classes, counts, gaussian)


def _gbc_of(x, codes, c: int, counts, gaussian: str, weights=None) -> float:
    """GBC of the (projected) rows ``x`` with class codes ``codes``; ``weights`` are row multiplicities."""
    means = class_sums(x, codes, c, weights=weights) / counts[:, None]
    resid = x - means[codes]
    # biased (1/n_c), as tf.reduce_variance
    var = class_sums(resid * resid, codes, c, weights=weights) / counts[:, None]
    means, var = to_numpy(means), to_numpy(var)  # (C, d): the pairwise part is small, numpy on the CPU
    if gaussian == "diagonal":
        var = np.maximum(var, _VARIANCE_FLOOR)
        return float(_gbc_from_stats(means, var, weight=1.0))
    var = np.maximum(var.mean(axis=1, keepdims=True), _VARIANCE_FLOOR)
    weight = float(x.shape[1]) if gaussian == "spherical" else 1.0
    return float(_gbc_from_stats(means, var, weight=weight))


def _check_options(gaussian: str, pca_dim: int | None) -> None:
    if gaussian not in _GAUSSIANS:
        raise ValueError(f"gaussian must be one of {_GAUSSIANS}, got {gaussian!r}")
    if pca_dim is not None and (isinstance(pca_dim, bool) or not isinstance(pca_dim, int) or pca_dim < 1):
        raise ValueError(f"pca_dim must be a positive int or None, got {pca_dim!r}")


def gbc_resampled(features, labels, *, gaussian: str = "diagonal",
                  pca_dim: int | None = 64) -> Callable[[np.ndarray], float]:
    """The bootstrap kernel of :func:`gbc`: ``kernel(counts)`` equals ``gbc(features[idx], labels[idx])``
    for every ``idx`` with ``np.bincount(idx) == counts``, up to rounding (and up to the sign of each
    principal axis, which the score does not see). The PCA is that of the weighted centred Gram matrix;
    class means and variances are weighted sums over the drawn rows."""
    _check_options(gaussian, pca_dim)
    x0 = as_numpy_matrix(features, "features")
    enc = encode_labels(labels, x0.shape[0])
    if pca_dim is not None:
        x0 = x0 - x0.mean(axis=0)  # the resample's mean is close: a small cancellation in its Gram

    def kernel(counts: np.ndarray) -> float:
        drawn = drawn_rows(counts, enc.codes, x0.shape[0], classes=enc.classes)
        x, w, n = x0[drawn.rows], drawn.weights, drawn.n
        if pca_dim is not None:
            shift = (w @ x) / n
            x = x - shift
            _, v = eigh(weighted_gram(x, w))
            # a contiguous copy of the axes: a reversed view makes the product a slow non-BLAS loop
            x = x @ np.ascontiguousarray(v[:, ::-1][:, : min(pca_dim, n, x.shape[1])])
        return _gbc_of(x, drawn.codes, drawn.n_classes, drawn.class_counts, gaussian, weights=w)

    return kernel


def _gbc_from_stats(means: np.ndarray, var: np.ndarray, *, weight: float) -> float:
    """−Σ_{c≠c'} exp(−D_B); ``var`` is (C, d) or (C, 1); ``weight`` multiplies the log term of a (C, 1)
    variance (the number of dimensions it stands for)."""
    c = means.shape[0]
    total = 0.0
    log_var = np.log(var)
    block = max(1, int(2**22 // max(1, c * means.shape[1])))
    for start in range(0, c, block):
        stop = min(c, start + block)
        avg = 0.5 * (var[start:stop, None, :] + var[None, :, :])
        diff2 = (means[start:stop, None, :] - means[None, :, :]) ** 2
        mahal = 0.125 * (diff2 / avg).sum(axis=2)
        logterm = 0.5 * (
            np.log(avg) - 0.5 * log_var[start:stop, None, :] - 0.5 * log_var[None, :, :]
        ).sum(axis=2)
        db = mahal + weight * logterm
        coef = np.exp(-db)
        rows = np.arange(start, stop)
        coef[rows - start, rows] = 0.0
        total = total + float(coef.sum())
    return -total
