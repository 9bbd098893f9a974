"""SFDA: self-challenging Fisher discriminant analysis (Shao et al., ECCV 2022); higher is better."""

from __future__ import annotations

import math

import torch

from ._inputs import as_matrix, class_sums, codes_tensor, encode_labels, gram

__all__ = ["sfda"]


def _largest_eigenvalue_3_power_steps(a: torch.Tensor) -> float:
    """λ_max estimate exactly as ``SFDA/utils.py::iterative_A(A, max_iterations=3)``."""
    x = a.sum(dim=1)
    y = x
    for _ in range(3):
        tmp = a @ x
        nrm = torch.linalg.vector_norm(tmp)
        if float(nrm) == 0.0:
            return 0.0
        y = tmp / nrm
        tmp = a @ y
        x = tmp / torch.linalg.vector_norm(tmp)
    return float(x @ a @ y)


def _lda_posteriors(
    x: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor, shrinkage: float | None
) -> tuple[torch.Tensor, float]:
    """Shrinkage-LDA posteriors of ``SFDA._solve_eigen`` + ``predict_proba``; returns (probs, shrinkage).

    The reference solves the generalised eigenproblem (S_b, shrunk S_w) and predicts with
    ``means @ V @ Vᵀ``; with all eigenvectors kept and ``Vᵀ S_w V = I`` that product is exactly
    ``means @ S_w⁻¹``, so one Cholesky solve gives the same posteriors.
    """
    n, d = x.shape
    c = counts.shape[0]
    priors = counts / n
    means = class_sums(x, codes, c) / counts[:, None]
    mu = x.mean(dim=0)
    xc = x - mu
    s_total = gram(xc) / n
    dm = (means - mu) * torch.sqrt(priors)[:, None]
    s_within = s_total - dm.T @ dm  # Σ_c π_c Cov_c (biased covariances), as the reference
    if shrinkage is None:
        lam_max = _largest_eigenvalue_3_power_steps(s_within)
        shrinkage = max(math.exp(-5.0 * lam_max), 1e-10)
    shrunk = (1.0 - shrinkage) * s_within
    shrunk.diagonal().add_(shrinkage * torch.trace(s_within) / d)
    chol, info = torch.linalg.cholesky_ex(shrunk)
    if int(info) == 0:
        coef = torch.cholesky_solve(means.T.contiguous(), chol).T  # means @ S_w⁻¹
    else:  # singular within-class scatter (e.g. every class a repeated point)
        coef = means @ torch.linalg.pinv(shrunk, hermitian=True)
    intercept = -0.5 * (means * coef).sum(dim=1) + torch.log(priors)
    scores = x @ coef.T + intercept
    return torch.softmax(scores, dim=1), float(shrinkage)


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
    x = as_matrix(features, "features")
    enc = encode_labels(labels, x.shape[0])
    codes = codes_tensor(enc, x.device)
    counts = torch.from_numpy(enc.counts).to(x.device, torch.float64)
    c = enc.n_classes
    prob, shrinkage = _lda_posteriors(x, codes, counts, None)
    prob = torch.softmax(prob, dim=1)  # the reference's "soften" step: softmax of probabilities
    means = class_sums(x, codes, c) / counts[:, None]
    others = (means.sum(dim=0, keepdim=True) - means) / (c - 1)
    p_true = prob.gather(1, codes[:, None])
    mixed = p_true * x + (1.0 - p_true) * others[codes]  # a new array; the input stays untouched
    prob2, _ = _lda_posteriors(mixed, codes, counts, shrinkage)
    return float(prob2.gather(1, codes[:, None]).mean())
