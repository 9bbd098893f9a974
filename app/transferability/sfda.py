"""SFDA: self-challenging Fisher discriminant analysis (Shao et al., ECCV 2022); higher is better."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ._inputs import as_array, as_numpy_matrix, encode_labels
from ._linalg import (
    center_,
    class_sums,
    codes_like,
    counts_like,
    gram,
    single_thread_blas,
    solve_psd,
    to_numpy,
    xp_of,
)
from ._resample import drawn_rows, weighted_gram

__all__ = ["sfda", "sfda_resampled"]


def _largest_eigenvalue_3_power_steps(a: np.ndarray) -> float:
    """λ_max estimate exactly as ``SFDA/utils.py::iterative_A(A, max_iterations=3)``."""
    x = a.sum(axis=1)
    y = x
    for _ in range(3):
        tmp = a @ x
        nrm = np.linalg.norm(tmp)
        if float(nrm) == 0.0:
            return 0.0
        y = tmp / nrm
        tmp = a @ y
        x = tmp / np.linalg.norm(tmp)
    return float(x @ a @ y)


def _softmax_rows_(s):
    """Row-wise softmax of ``s``, computed in place (``s`` is a scratch array of the caller)."""
    xp = xp_of(s)
    s -= xp.amax(s, axis=1, keepdims=True)
    xp.exp(s, out=s)
    s /= s.sum(axis=1, keepdims=True)
    return s


def _true_class(prob, codes):
    """prob[i, codes[i]] as an (n, 1) column."""
    if xp_of(prob) is np:
        return np.take_along_axis(prob, codes[:, None], axis=1)
    return prob.gather(1, codes[:, None])


def _lda_posteriors(xc, mu, centred_means, counts, shrinkage: float | None, weights=None):
    """Shrinkage-LDA posteriors of ``SFDA._solve_eigen`` + ``predict_proba`` for the features
    ``xc + mu`` (``xc`` column-centred, ``mu`` its column means, ``centred_means`` the class means of
    ``xc``); returns (probs, shrinkage).

    The reference solves the generalised eigenproblem (S_b, shrunk S_w) and predicts with
    ``means @ V @ Vᵀ``; with all eigenvectors kept and ``Vᵀ S_w V = I`` that product is exactly
    ``means @ S_w⁻¹``, so one Cholesky solve gives the same posteriors. The scores ``x @ coefᵀ`` are
    evaluated as ``xc @ coefᵀ + mu @ coefᵀ`` so that no uncentred copy is needed.
    """
    n, d = xc.shape
    xp = xp_of(xc)
    if weights is not None:  # row multiplicities: the statistics of the materialised rows
        n = float(weights.sum())
    priors = counts / n
    s_total = (gram(xc) if weights is None else weighted_gram(xc, weights)) / n
    dm = centred_means * xp.sqrt(priors)[:, None]
    s_within = s_total - dm.T @ dm  # Σ_c π_c Cov_c (biased covariances), as the reference
    if shrinkage is None:
        with single_thread_blas():  # six d×d mat-vecs: thread start-up would dominate them
            lam_max = _largest_eigenvalue_3_power_steps(to_numpy(s_within))
        shrinkage = max(math.exp(-5.0 * lam_max), 1e-10)
    shrunk = (1.0 - shrinkage) * s_within
    diag = shrunk.diagonal() if xp is not np else shrunk.reshape(-1)[:: d + 1]  # writable views
    diag += shrinkage * float(s_within.trace()) / d
    means = centred_means + mu
    # means @ S_w⁻¹ (S_w symmetric); the pseudo-inverse when it is singular (e.g. every class one point).
    coef = solve_psd(shrunk, means.T.copy() if xp is np else means.T.contiguous()).T
    intercept = -0.5 * (means * coef).sum(axis=1) + xp.log(priors) + coef @ mu
    scores = xc @ coef.T
    scores += intercept
    return _softmax_rows_(scores), float(shrinkage)


def sfda(features, labels) -> float:
    r"""SFDA score: mean posterior of the true class in a self-challenging regularised Fisher space.

    Follows ``TencentARC/SFDA: metrics.py::SFDA_Score``: a shrinkage LDA (within-class scatter shrunk
    by :math:`\lambda=\max(e^{-5\lambda_{max}(S_w)}, 10^{-10})`, :math:`\lambda_{max}` from three power
    steps) gives posteriors :math:`p(y\mid x)`; they are softened by a second softmax, each sample is
    mixed with the mean of the other classes' means ("ConfMix":
    :math:`x \leftarrow p_y x + (1-p_y)\bar\mu_{\neg y}`), the LDA is refitted with the same λ and the score
    is the mean posterior of the true class (no log). Range (0, 1]. Saturates at 1 when ``D >= N``.

    Unlike the reference, the caller's array is never modified (the reference writes ConfMix into ``X``)
    and nothing is printed. ``means @ V Vᵀ`` of the reference's generalised eigenvectors is computed as a
    Cholesky solve with the shrunk within-class scatter (identical up to rounding).

    Parameters
    ----------
    features : array-like or Tensor of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
        At least 2 classes.

    Returns
    -------
    score : float
        In (0, 1]; higher is better.

    References
    ----------
    .. [1] Shao, Zhao, Ge, Zhang, Xu, Wang, Luo. "Not All Models Are Equal: Predicting Model
       Transferability in a Self-challenging Fisher Space", ECCV 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import sfda
    >>> f = np.array([[0.0, 1.0], [1.0, 0.0], [4.0, 1.0], [5.0, 2.0]])
    >>> round(sfda(f, [0, 0, 1, 1]), 4)
    0.9998
    """
    x = as_array(features, "features", owned=True)  # our copy: ConfMix is applied to it in place
    enc = encode_labels(labels, x.shape[0])
    codes = codes_like(enc, x)
    counts = counts_like(enc, x)
    mu = center_(x)
    return _sfda_centred(x, mu, codes, enc.n_classes, counts)


def _sfda_centred(x, mu, codes, c: int, counts, weights=None) -> float:
    """SFDA of the rows ``x + mu`` (``x`` column-centred, owned: ConfMix is applied to it in place); with
    ``weights`` (row multiplicities, numpy) the rows stand for their copies and ``counts`` are weighted."""
    n = x.shape[0] if weights is None else float(weights.sum())
    means = class_sums(x, codes, c, weights=weights) / counts[:, None]  # class means in the centred frame
    prob, shrinkage = _lda_posteriors(x, mu, means, counts, None, weights)
    prob = _softmax_rows_(prob)  # the reference's "soften" step: softmax of probabilities
    others = (means.sum(axis=0, keepdims=True) - means) / (c - 1)
    p_true = _true_class(prob, codes)
    # ConfMix p·x + (1−p)·o, in place and in the centred frame (p + (1−p) = 1 carries μ through). The class
    # sums of the mixed features, Σ_c p·x + (n_c − Σ_c p)·o_c, come from one p-weighted pass, so their mean
    # m and class means are known before mixing, and mixing and re-centring are one pass over row blocks:
    # x ← p·(x − o) + o − m.
    p = p_true[:, 0]
    wp = p if weights is None else p * weights
    mixed_sums = class_sums(x, codes, c, weights=wp)
    mixed_sums += (counts - class_sums(wp[:, None], codes, c)[:, 0])[:, None] * others
    shift = mixed_sums.sum(axis=0) / n
    step = max(1, 2**18 // x.shape[1])
    for start in range(0, x.shape[0], step):
        block, o = x[start : start + step], others[codes[start : start + step]]
        block -= o
        block *= p_true[start : start + step]
        o -= shift
        block += o
    mu = mu + shift
    prob2, _ = _lda_posteriors(x, mu, mixed_sums / counts[:, None] - shift, counts, shrinkage, weights)
    true = _true_class(prob2, codes)
    if weights is None:
        return float(true.mean())
    return float((weights * true[:, 0]).sum() / n)


def sfda_resampled(features, labels) -> Callable[[np.ndarray], float]:
    """The bootstrap kernel of :func:`sfda`: ``kernel(counts)`` equals ``sfda(features[idx], labels[idx])``
    for every ``idx`` with ``np.bincount(idx) == counts``, up to rounding — both LDAs from weighted Gram
    matrices and class sums, the posteriors and ConfMix once per drawn row (its copies share them)."""
    x0 = as_numpy_matrix(features, "features")
    enc = encode_labels(labels, x0.shape[0])

    def kernel(counts: np.ndarray) -> float:
        drawn = drawn_rows(counts, enc.codes, x0.shape[0], classes=enc.classes)
        x, w = x0[drawn.rows], drawn.weights  # a fresh copy: ConfMix works in place
        mu = (w @ x) / drawn.n
        x -= mu
        return _sfda_centred(x, mu, drawn.codes, drawn.n_classes, drawn.class_counts, w)

    return kernel
