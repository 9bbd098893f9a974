"""LFC: label–feature correlation (Deshpande et al., 2021) in the paper's Frobenius form; higher is better."""

from __future__ import annotations

import math

import numpy as np

from ._inputs import as_array, encode_labels
from ._linalg import class_sums, codes_like, gram, to_numpy

__all__ = ["lfc"]


def lfc(features, labels) -> float:
    r"""Label–feature correlation: cosine between the centred feature kernel and the centred label kernel.

    .. math:: \mathrm{LFC} = \frac{\langle\tilde\Theta, \tilde Y\rangle_F}{\|\tilde\Theta\|_F\,\|\tilde Y\|_F},
        \quad \Theta = FF^\top,\quad Y_{ij} = \begin{cases}+1 & y_i = y_j\\-1 & \text{else}\end{cases}

    where the tilde subtracts the global scalar mean of the matrix (not the double centring of CKA). This
    is the paper's Frobenius form, equal to the public implementation ``LFC(args).score`` with method
    ``lfc-dot`` (cosine similarity of the flattened matrices; no official code was released). Another
    public implementation divides by the *spectral* norm instead; that is a different number, not bounded
    by 1, and is not provided.

    No N × N matrix is formed: with :math:`m` the feature mean, :math:`G` the centred features,
    :math:`S = G^\top G` and :math:`t_c` the class sums of :math:`G`,
    :math:`\langle\tilde\Theta,\tilde Y\rangle = 2\sum_c(2 n_c\, m^\top t_c + \|t_c\|^2)`,
    :math:`\|\tilde\Theta\|_F^2 = 2N\,m^\top S m + \|S\|_F^2` and
    :math:`\|\tilde Y\|_F^2 = N^2(1-\mu_Y^2)`, :math:`\mu_Y = (2\sum_c n_c^2 - N^2)/N^2`; the cost is one
    Gram matrix, O(N·D²) time and O(D²) memory, instead of the reference's O(N²) memory.

    Parameters
    ----------
    features : array-like or Tensor of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
        At least 2 classes.

    Returns
    -------
    score : float
        In [−1, 1]; higher is better.

    Raises
    ------
    ValueError
        Fewer than 2 classes, or constant features (the feature kernel is constant: 0/0).

    References
    ----------
    .. [1] Deshpande, Achille, Ravichandran, Li, Zancato, Fowlkes, Bhotika, Soatto, Perona. "A linearized
       framework and a new benchmark for model selection for fine-tuning", arXiv:2102.00084 (2021).

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import lfc
    >>> f = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    >>> lfc(f, [0, 0, 1, 1])
    1.0
    """
    x = as_array(features, "features")
    n = x.shape[0]
    enc = encode_labels(labels, n, "labels", min_classes=2)
    mean = x.mean(axis=0)
    g = x - mean[None, :]
    s = gram(g)
    t = class_sums(g, codes_like(enc, g), enc.n_classes)  # (C, D)
    counts = enc.counts.astype(np.float64)
    m_t = to_numpy(t @ mean)  # (C,)
    t_sq = to_numpy((t * t).sum(axis=1))
    numerator = 2.0 * float(np.sum(2.0 * counts * m_t + t_sq))
    theta_sq = 2.0 * n * float(mean @ (s @ mean)) + float((s * s).sum())
    mu_y = (2.0 * float(np.sum(counts**2)) - n * n) / (n * n)
    y_norm = n * math.sqrt(max(1.0 - mu_y * mu_y, 0.0))
    if not theta_sq > 0:
        raise ValueError("lfc is undefined for constant features (the centred feature kernel is zero)")
    return float(numerator / (math.sqrt(theta_sq) * y_norm))
