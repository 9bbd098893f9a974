"""Domain similarity between two samples in one feature space: distances, lower means closer.

``frechet_distance``, ``mmd`` (squared MMD, unbiased) and ``proxy_a_distance`` compare unlabelled samples
``a`` (n_a, d) and ``b`` (n_b, d); ``otdd`` (in :mod:`.otdd`) compares labelled datasets.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ._inputs import as_matrix, as_numpy_matrix, check_positive_int, check_random_state
from ._linalg import eigh, gram, svdvals

__all__ = ["frechet_distance", "mmd", "proxy_a_distance", "gaussian_factor", "nuclear_cross"]


def _pair(a, b, *, min_rows: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    ta = as_matrix(a, "a", min_rows=min_rows)
    tb = as_matrix(b, "b", min_rows=min_rows)
    if ta.shape[1] != tb.shape[1]:
        raise ValueError(
            f"a and b must share the feature dimension, got a {tuple(ta.shape)} and b {tuple(tb.shape)}"
        )
    if ta.device != tb.device:
        tb = tb.to(ta.device)
    return ta, tb


def gaussian_factor(x: torch.Tensor, ddof: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, trace of the covariance and a factor ``B`` (d, r) with ``B Bᵀ = cov(x)``.

    ``B`` is the scaled centred data when ``n <= d`` (r = n) and the symmetric square root of the
    covariance otherwise (r = d); either choice gives the same singular values of ``B_aᵀ B_b``.
    """
    n, d = x.shape
    mu = x.mean(dim=0)
    xc = (x - mu) / np.sqrt(max(n - ddof, 1))
    tr = (xc * xc).sum()
    if n <= d:
        return mu, tr, xc.T
    s, v = eigh(gram(xc))
    root = (v * torch.sqrt(torch.clamp(s, min=0.0))) @ v.T
    return mu, tr, root


def nuclear_cross(ba: torch.Tensor, bb: torch.Tensor) -> torch.Tensor:
    """tr((Σ_a^{1/2} Σ_b Σ_a^{1/2})^{1/2}) = ‖B_aᵀ B_b‖_* for factors with B Bᵀ = Σ."""
    return svdvals(ba.T @ bb).sum()


def frechet_distance(a, b) -> float:
    r"""Fréchet distance between Gaussians fitted to two samples (the FID formula).

    :math:`\|\mu_a-\mu_b\|^2 + \operatorname{tr}(\Sigma_a + \Sigma_b - 2(\Sigma_a^{1/2}\Sigma_b\Sigma_a^{1/2})^{1/2})`
    with unbiased covariances (``np.cov``), as in pytorch-fid. The matrix square root is avoided: the
    trace term equals the nuclear norm of :math:`B_a^\top B_b` for any factors :math:`BB^\top=\Sigma`,
    which is exact and never produces the complex round-off of ``scipy.linalg.sqrtm``. Squared units.

    Parameters
    ----------
    a : array-like or Tensor of shape (n_a, n_features)
    b : array-like or Tensor of shape (n_b, n_features)

    Returns
    -------
    distance : float
        ``>= 0``; lower means closer; 0 for identical samples.

    References
    ----------
    .. [1] Dowson, Landau. "The Fréchet distance between multivariate normal distributions", J.
       Multivariate Analysis 1982.
    .. [2] Heusel et al. "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
       Equilibrium", NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import frechet_distance
    >>> a = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    >>> round(frechet_distance(a, a + [3.0, 0.0]), 6)
    9.0
    """
    ta, tb = _pair(a, b)
    mu_a, tr_a, fa = gaussian_factor(ta, ddof=1)
    mu_b, tr_b, fb = gaussian_factor(tb, ddof=1)
    value = ((mu_a - mu_b) ** 2).sum() + tr_a + tr_b - 2.0 * nuclear_cross(fa, fb)
    return float(torch.clamp(value, min=0.0))


def _median_bandwidth(ta: torch.Tensor, tb: torch.Tensor, random_state: int, max_points: int = 1000) -> float:
    pooled = torch.cat([ta, tb], dim=0)
    if pooled.shape[0] > max_points:
        idx = np.sort(np.random.default_rng(random_state).choice(pooled.shape[0], max_points, replace=False))
        pooled = pooled[torch.from_numpy(idx).to(pooled.device)]
    d = torch.cdist(pooled, pooled)
    iu = torch.triu_indices(d.shape[0], d.shape[0], offset=1, device=d.device)
    med = float(torch.median(d[iu[0], iu[1]]))
    return med if med > 0 else 1.0


def _block_rows(rows: int, cols: int, blocks: int) -> int:
    """Rows per block of a ``rows × cols`` kernel sum: ``blocks`` blocks (each block's temporaries stay in
    cache), none over 2²⁴ entries."""
    return max(1, min(int(2**24 // max(1, cols)), -(-rows // blocks)))


def _kernel_sum(x: torch.Tensor, y: torch.Tensor, gamma: float, blocks: int = 8) -> torch.Tensor:
    """Σ_ij exp(−γ‖x_i − y_j‖²), in row blocks (:func:`_block_rows`)."""
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    y_sq = (y * y).sum(dim=1)
    step = _block_rows(x.shape[0], y.shape[0], blocks)
    for start in range(0, x.shape[0], step):
        xb = x[start : start + step]
        d2 = (xb * xb).sum(dim=1)[:, None] + y_sq[None, :] - 2.0 * (xb @ y.T)
        total = total + torch.exp(-gamma * torch.clamp(d2, min=0.0)).sum()
    return total


def _kernel_sum_within(x: torch.Tensor, gamma: float, blocks: int = 8) -> torch.Tensor:
    """Σ_{i≠j} exp(−γ‖x_i − x_j‖²) over one sample, from the upper triangle only: each row block against
    itself (diagonal dropped) and, counted twice, against the rows after it — about half the kernel
    evaluations of the full square, the same sum up to the order of the additions."""
    n = x.shape[0]
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    sq = (x * x).sum(dim=1)
    step = _block_rows(n, n, blocks)
    for start in range(0, n, step):
        stop = min(n, start + step)
        xb = x[start:stop]
        d2 = sq[start:stop, None] + sq[None, start:] - 2.0 * (xb @ x[start:].T)
        k = torch.exp(-gamma * torch.clamp(d2, min=0.0))
        rows = torch.arange(stop - start, device=x.device)
        k[rows, rows] = 0.0
        total = total + k[:, : stop - start].sum() + 2.0 * k[:, stop - start :].sum()
    return total


def mmd(a, b, *, bandwidth="median", random_state: int = 0) -> float:
    r"""Unbiased squared maximum mean discrepancy with a Gaussian (RBF) kernel.

    :math:`\widehat{\mathrm{MMD}}^2_u = \frac{1}{m(m-1)}\sum_{i\ne j}k(a_i,a_j) +
    \frac{1}{n(n-1)}\sum_{i\ne j}k(b_i,b_j) - \frac{2}{mn}\sum_{i,j}k(a_i,b_j)`,
    :math:`k(x,y)=\exp(-\|x-y\|^2/(2\sigma^2))`. ``bandwidth="median"`` sets σ to the median pairwise
    distance of the pooled sample (on a seeded subsample of at most 1000 points). Kernel sums are
    accumulated in row blocks, so memory stays O((m + n) · block).

    Parameters
    ----------
    a : array-like or Tensor of shape (n_a, n_features)
    b : array-like or Tensor of shape (n_b, n_features)
    bandwidth : "median" or float, default="median"
        Kernel width σ.
    random_state : int, default=0
        Seeds the median-heuristic subsample.

    Returns
    -------
    mmd2 : float
        Squared MMD estimate; lower means closer. Unbiased, so it can be slightly negative for samples
        of one distribution.

    References
    ----------
    .. [1] Gretton, Borgwardt, Rasch, Schölkopf, Smola. "A Kernel Two-Sample Test", JMLR 2012.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import mmd
    >>> a = np.array([[0.0], [1.0], [2.0]])
    >>> round(mmd(a, a + 5.0, bandwidth=1.0), 4)
    0.8963
    """
    ta, tb = _pair(a, b)
    random_state = check_random_state(random_state)
    if isinstance(bandwidth, str):
        if bandwidth != "median":
            raise ValueError(f"bandwidth must be 'median' or a positive float, got {bandwidth!r}")
        sigma = _median_bandwidth(ta, tb, random_state)
    else:
        sigma = float(bandwidth)
        if not np.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"bandwidth must be 'median' or a positive float, got {bandwidth!r}")
    gamma = 1.0 / (2.0 * sigma**2)
    m, n = ta.shape[0], tb.shape[0]
    kaa = _kernel_sum_within(ta, gamma) / (m * (m - 1))
    kbb = _kernel_sum_within(tb, gamma) / (n * (n - 1))
    kab = _kernel_sum(ta, tb, gamma) / (m * n)
    return float(kaa + kbb - 2.0 * kab)


def proxy_a_distance(
    a, b, *, folds: int = 5, C: float = 1.0, max_iter: int = 200, random_state: int = 0
) -> float:
    r"""Proxy A-distance :math:`2(1-2\varepsilon)` from a linear domain classifier's held-out error ε.

    A standardised logistic-regression classifier is trained to tell ``a`` from ``b``; ε is its mean error
    under stratified k-fold cross-validation (shuffled with ``random_state``).

    Parameters
    ----------
    a : array-like or Tensor of shape (n_a, n_features)
    b : array-like or Tensor of shape (n_b, n_features)
    folds : int, default=5
    C : float, default=1.0
    max_iter : int, default=200
    random_state : int, default=0

    Returns
    -------
    distance : float
        In [-2, 2]; lower means closer (about 0 or below for indistinguishable samples, 2 for
        linearly separable ones).

    References
    ----------
    .. [1] Ben-David, Blitzer, Crammer, Pereira. "Analysis of Representations for Domain Adaptation",
       NeurIPS 2006.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import proxy_a_distance
    >>> a = np.array([[0.0], [0.1], [0.2], [0.3], [0.4]])
    >>> proxy_a_distance(a, a + 10.0)
    2.0
    """
    from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xa = as_numpy_matrix(a, "a")
    xb = as_numpy_matrix(b, "b")
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(f"a and b must share the feature dimension, got a {xa.shape} and b {xb.shape}")
    folds = check_positive_int(folds, "folds", minimum=2)
    random_state = check_random_state(random_state)
    smallest = min(xa.shape[0], xb.shape[0])
    if smallest < folds:
        raise ValueError(f"proxy_a_distance needs at least folds={folds} samples per side, got {smallest}")
    x = np.concatenate([xa, xb])
    y = np.concatenate([np.zeros(xa.shape[0], dtype=np.int64), np.ones(xb.shape[0], dtype=np.int64)])
    errors = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=random_state).split(x, y):
        model = make_pipeline(
            StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=random_state)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkConvergenceWarning)
            model.fit(x[train], y[train])
        errors.append(float(np.mean(model.predict(x[test]) != y[test])))
    return float(2.0 * (1.0 - 2.0 * np.mean(errors)))
