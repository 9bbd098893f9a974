"""PARC: pairwise annotation representation comparison (Bolya et al., NeurIPS 2021); higher is better."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.stats

from ._inputs import (
    EncodedLabels,
    as_numpy_matrix,
    as_targets,
    check_positive_int,
    check_random_state,
    encode_labels,
    stratified_subsample,
)
from .leep import SubsampleWarning

__all__ = ["parc", "PARC_MAX_SAMPLES"]

PARC_MAX_SAMPLES = 5000
"""Default sample cap: PARC needs O(n²) time and memory (≈1 GB peak at 5000 samples)."""


def _row_correlation(x: np.ndarray) -> np.ndarray:
    """Pearson correlation between rows, like ``np.corrcoef(x)``, except that a constant row is treated as
    uncorrelated with everything (0) instead of producing NaN."""
    xc = x - x.mean(axis=1, keepdims=True)
    norms = np.sqrt(np.einsum("ij,ij->i", xc, xc))
    scale = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    xn = xc * scale[:, None]
    return xn @ xn.T


def _spearman_with_class_dissimilarity(rdm_f: np.ndarray, codes: np.ndarray, upper: np.ndarray) -> float:
    """Spearman ρ between ``rdm_f`` and the one-hot label dissimilarity, without ranking the latter.

    Rows of a one-hot matrix correlate 1 within a class and −1/(C−1) across classes, so the label
    dissimilarity takes exactly two values (0 < 1 + 1/(C−1)) and its average ranks are known in closed
    form: (s+1)/2 for the s same-class pairs, s + (t−s+1)/2 for the others (t pairs in all). This is the
    same ρ as ``spearmanr(rdm_f, rdm_y)`` and saves a sort of all n(n−1)/2 pairs.
    """
    same = (codes[:, None] == codes[None, :])[upper]
    t = same.shape[0]
    s = int(np.count_nonzero(same))
    rank_y = np.where(same, (s + 1) / 2.0, s + (t - s + 1) / 2.0)
    if s in (0, t):
        return float("nan")
    rank_f = scipy.stats.rankdata(rdm_f)
    rank_f -= rank_f.mean()
    rank_y -= rank_y.mean()
    denom = np.sqrt((rank_f @ rank_f) * (rank_y @ rank_y))
    return float(rank_f @ rank_y / denom) if denom > 0 else float("nan")


def parc(
    features,
    labels_or_targets,
    *,
    n_dims: int | None = 32,
    max_samples: int = PARC_MAX_SAMPLES,
    random_state: int = 0,
) -> float:
    r"""PARC: Spearman correlation (×100) between the feature and the label dissimilarity matrices.

    Follows ``dbolya/parc: methods.py::PARC.forward``: the features are reduced to ``n_dims`` principal
    components (scikit-learn randomized PCA, ``random_state=1919``, ``iterated_power=1``, as the
    reference), standardised, and ``RDM_f = 1 - corrcoef(rows)``; ``RDM_y = 1 - corrcoef(one-hot(y))``
    (or of the target rows for regression / multi-label targets); the score is
    ``100 · spearman(upper-triangle(RDM_f), upper-triangle(RDM_y))``. A constant row (possible only for
    degenerate inputs, e.g. an all-zero multi-label row) counts as uncorrelated instead of NaN.

    The cost is O(n²) in time and memory, so above ``max_samples`` (default 5000) a deterministic
    subsample is used — stratified by class for labels — and a :class:`SubsampleWarning` says so.

    Parameters
    ----------
    features : array-like or Tensor of shape (n_samples, n_features)
    labels_or_targets : array-like of shape (n_samples,) or (n_samples, n_targets)
        Class labels (1-D), or real / 0-1 targets with ``n_targets >= 2`` (2-D).
    n_dims : int or None, default=32
        PCA dimension (capped at ``min(n_samples, n_features)``); ``None`` skips the PCA.
    max_samples : int, default=5000
    random_state : int, default=0
        Seeds the subsample only (the PCA seed is fixed at 1919 as in the reference).

    Returns
    -------
    score : float
        In [-100, 100]; higher is better.

    References
    ----------
    .. [1] Bolya, Mittapalli, Hoffman. "Scalable Diverse Model Selection for Accessible Transfer
       Learning", NeurIPS 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import parc
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1, 2], 10)
    >>> f = rng.normal(size=(30, 4)) + 3 * np.eye(4)[y]
    >>> round(parc(f, y, n_dims=None), 4)
    67.0804
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    x = as_numpy_matrix(features, "features")
    n = x.shape[0]
    max_samples = check_positive_int(max_samples, "max_samples", minimum=3)
    random_state = check_random_state(random_state)
    if n_dims is not None:
        n_dims = check_positive_int(n_dims, "n_dims")
    y_arr = labels_or_targets
    ndim = y_arr.ndim if hasattr(y_arr, "ndim") else np.asarray(y_arr).ndim
    if ndim == 1:
        enc: EncodedLabels | None = encode_labels(y_arr, n, "labels")
        idx = stratified_subsample(enc.codes, max_samples, random_state) if n > max_samples else None
        codes = enc.codes if idx is None else enc.codes[idx]
        y = np.eye(enc.n_classes)[codes]
    else:
        enc = None
        y_all = as_targets(y_arr, n, "targets").cpu().numpy()
        if y_all.shape[1] < 2:
            raise ValueError(
                f"PARC needs targets with at least 2 columns (row correlations), got shape {y_all.shape}"
            )
        idx = None
        if n > max_samples:
            idx = np.sort(np.random.default_rng(random_state).choice(n, size=max_samples, replace=False))
        y = y_all if idx is None else y_all[idx]
    if idx is not None:
        warnings.warn(
            f"parc: {n} samples exceed max_samples={max_samples}; using a deterministic "
            f"{'stratified ' if enc is not None else ''}subsample of {idx.shape[0]} (random_state={random_state})",
            SubsampleWarning,
            stacklevel=2,
        )
        x = x[idx]
    if n_dims is not None:
        k = min(n_dims, *x.shape)
        x = PCA(n_components=k, svd_solver="randomized", random_state=1919, iterated_power=1).fit_transform(x)
    x = StandardScaler().fit_transform(x)
    m = x.shape[0]
    upper = np.triu(np.ones((m, m), dtype=bool), k=1)
    # Rounding to 12 decimals restores the exact ties that round-off breaks (one-hot rows give only two
    # distinct label dissimilarities); Spearman's average ranks depend on those ties.
    rdm_f = np.round(1.0 - _row_correlation(x), 12)[upper]
    if enc is not None:
        rho = _spearman_with_class_dissimilarity(rdm_f, codes, upper)
    else:
        rdm_y = np.round(1.0 - _row_correlation(y), 12)[upper]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.stats.ConstantInputWarning)
            rho = scipy.stats.spearmanr(rdm_f, rdm_y)[0]
    if not np.isfinite(rho):
        raise ValueError("PARC is undefined: the feature or label dissimilarities are all equal")
    return float(rho * 100.0)
