"""TransRate (Huang et al. 2022), the paper-appendix form on centred, un-normalised features; higher is better."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ._inputs import as_array, as_numpy_matrix, check_positive_float, encode_labels
from ._linalg import center_, gram, logdet_identity_plus, outer_gram, single_thread_blas
from ._resample import drawn_rows, weighted_gram, weighted_outer

__all__ = ["transrate", "transrate_resampled"]

_SMALL_PRODUCT = 2**27  # multiply-adds of a class Gram below which one BLAS thread is faster


def _coding_rate(z, eps: float, g=None, weights=None, n: int | None = None) -> float:
    """½ log det(I_d + zᵀz / (n ε)), evaluated on the smaller of zᵀz and zzᵀ (Sylvester's identity).

    With ``weights`` (row multiplicities, ``n`` their sum) it is the coding rate of the materialised rows:
    ``zᵀWz``, or the outer Gram of the √w-scaled rows (same non-zero spectrum as the copies' ``zzᵀ``)."""
    rows, d = z.shape
    if weights is None:
        n = rows
        if g is None:
            g = gram(z) if n >= d else outer_gram(z)
    elif g is None:
        g = weighted_gram(z, weights) if rows >= d else weighted_outer(z, weights)
    return 0.5 * logdet_identity_plus(g, 1.0 / (n * eps))


def transrate(features, labels, *, eps: float = 1e-4) -> float:
    r"""TransRate: coding rate of the features minus their class-conditional coding rate.

    :math:`TrR = R(Z,\varepsilon) - \frac1C\sum_c R(Z_c,\varepsilon)` with
    :math:`R(Z,\varepsilon) = \frac12\log\det(I + \frac{1}{n\varepsilon}Z^\top Z)`, on column-centred,
    un-normalised features, as in ``tllib/ranking/transrate.py::transrate`` (``ε`` is the paper's
    :math:`\varepsilon^2`; class terms are averaged uniformly). The official ``Long-Kai/TransRate`` code
    row-normalises the features and rescales by rank, giving a different number.

    Each class term is evaluated on the smaller of :math:`Z_c^\top Z_c` (d×d) and :math:`Z_cZ_c^\top`
    (n_c×n_c), which have the same non-zero spectrum, so the cost is one d×d Gram matrix plus small
    per-class Gram matrices.

    Parameters
    ----------
    features : array-like or Tensor of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    eps : float, default=1e-4
        Distortion ε (squared), as in tllib.

    Returns
    -------
    score : float
        Higher is better.

    References
    ----------
    .. [1] Huang, Huang, Rong, Yang, Wei. "Frustratingly Easy Transferability Estimation", ICML 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import transrate
    >>> f = np.array([[0.0, 1.0], [1.0, 0.0], [4.0, 1.0], [5.0, 2.0]])
    >>> round(transrate(f, [0, 0, 1, 1]), 4)
    0.0911
    """
    z = as_array(features, "features", owned=True)
    enc = encode_labels(labels, z.shape[0])
    eps = check_positive_float(eps, "eps")
    center_(z)
    total = _coding_rate(z, eps)
    order = np.argsort(enc.codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(enc.counts)])
    d = z.shape[1]
    conditional = 0.0
    for c in range(enc.n_classes):
        rows = order[bounds[c] : bounds[c + 1]]
        if isinstance(z, torch.Tensor):
            conditional = conditional + _coding_rate(z.index_select(0, torch.from_numpy(rows).to(z.device)), eps)
            continue
        zc = z[rows]
        m = min(zc.shape[0], d)
        if m * m * max(zc.shape[0], d) <= _SMALL_PRODUCT:
            # A small class Gram is far below what a threaded BLAS call amortises (65 ms vs ~3 ms for
            # 200×1024 on a loaded 2-core machine), so the whole class term runs on one thread.
            with single_thread_blas():
                conditional = conditional + _coding_rate(zc, eps)
        else:
            conditional = conditional + _coding_rate(zc, eps)
    return float(total - conditional / enc.n_classes)


def transrate_resampled(features, labels, *, eps: float = 1e-4) -> Callable[[np.ndarray], float]:
    """The bootstrap kernel of :func:`transrate`: ``kernel(counts)`` equals ``transrate(features[idx],
    labels[idx])`` for every ``idx`` with ``np.bincount(idx) == counts``, up to rounding — every coding rate
    from the drawn rows with their multiplicities as weights."""
    x0 = as_numpy_matrix(features, "features")
    enc = encode_labels(labels, x0.shape[0])
    eps = check_positive_float(eps, "eps")
    x0 = x0 - x0.mean(axis=0)

    def kernel(counts: np.ndarray) -> float:
        drawn = drawn_rows(counts, enc.codes, x0.shape[0], classes=enc.classes)
        w, n = drawn.weights, drawn.n
        z = x0[drawn.rows]
        z = z - (w @ z) / n
        d = z.shape[1]
        # the materialised side (n ≥ d) decides between the d×d and the outer Gram, as in transrate
        total = _coding_rate(z, eps, g=weighted_gram(z, w) if n >= d else weighted_outer(z, w), weights=w, n=n)
        order = np.argsort(drawn.codes, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(drawn.codes, minlength=drawn.n_classes))])
        conditional = 0.0
        with single_thread_blas():  # class Grams are small (see transrate)
            for c in range(drawn.n_classes):
                rows = order[bounds[c] : bounds[c + 1]]
                wc, nc = w[rows], int(drawn.class_counts[c])
                g = weighted_gram(z[rows], wc) if nc >= d else weighted_outer(z[rows], wc)
                conditional += _coding_rate(z[rows], eps, g=g, weights=wc, n=nc)
        return float(total - conditional / drawn.n_classes)

    return kernel
