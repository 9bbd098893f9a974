"""ETran (Gholami et al., ICCV 2023): the per-model parts ``etran_lda`` and ``etran_energy`` (higher is
better) and their pool-level combination ``etran_combine``.

The parts are registry metrics; the combination is not (it needs every candidate of the pool) and is
listed in ``registry.POOL_SCORES`` for the ranking to call once all candidates are scored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import scipy.special

from ._inputs import as_numpy_matrix, check_counts, check_positive_float, encode_labels
from ._linalg import class_sums
from ._pool import minmax, pool_parts

__all__ = ["etran_lda", "etran_energy", "etran_combine", "ETRAN_PARTS"]

ETRAN_PARTS = ("etran_lda", "etran_energy")
"""Registry metrics that :func:`etran_combine` reads for every model of the pool."""


def etran_lda(features, labels) -> float:
    r"""ETran's classification score :math:`S_{cls}`: mean posterior of the true class (higher is better).

    Equal to ``mgholamikn/ETran: metrics.py::LDA_Score``. That code fits an "LDA" whose prediction
    weights are ``means @ V @ Vᵀ`` with ``V`` the eigenvectors returned by ``np.linalg.eigh`` of the
    (non-symmetric) product ``inv(S_w) @ S_b``; since ``eigh`` always returns a complete orthonormal basis
    and all of it is kept, ``V Vᵀ = I`` and the weights are the class means themselves, whatever the
    scatter matrices and shrinkage are. The score is therefore exactly

    .. math:: S_{cls} = \frac1N\sum_i \operatorname{softmax}_c\big(x_i^\top\mu_c - \tfrac12\|\mu_c\|^2
        + \log\pi_c\big)_{y_i}

    (class means :math:`\mu_c`, class frequencies :math:`\pi_c`): the posterior of a Gaussian classifier
    with identity covariance, computed here in O(N·D·C) without the scatter matrices. Features are used as
    given (no centring or scaling), so the score depends on their scale.

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
    .. [1] Gholami, Akbari, Wang, Kamranian, Zhang. "ETran: Energy-Based Transferability Estimation",
       ICCV 2023 (arXiv:2308.02027).

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import etran_lda
    >>> f = np.array([[0.0, 0.0], [0.0, 1.0], [2.0, 0.0], [2.0, 1.0]])
    >>> round(etran_lda(f, [0, 0, 1, 1]), 6)
    0.880797
    """
    x = as_numpy_matrix(features, "features")
    enc = encode_labels(labels, x.shape[0], "labels", min_classes=2)
    counts = enc.counts.astype(np.float64)
    means = class_sums(x, enc.codes, enc.n_classes) / counts[:, None]
    logits = x @ means.T
    logits += -0.5 * np.einsum("cd,cd->c", means, means) + np.log(counts / x.shape[0])
    log_post = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
    true = np.take_along_axis(log_post, enc.codes[:, None], axis=1)[:, 0]
    return float(np.exp(true).mean())


def etran_energy(features, *, percent: float = 0.5, tail: str = "bottom", min_count: int = 0) -> float:
    r"""ETran's energy score :math:`S_{en}`: mean log-sum-exp of the feature rows in one tail (higher is
    better).

    Equal to ``mgholamikn/ETran: metrics.py::Energy_Score(features, 0.5, 'bot')`` as its
    ``evaluate_metric.py`` calls it (on the **feature matrix**, not on logits): the energy of a sample is
    :math:`E_i = \log\sum_j \exp(x_{ij})`; the score is the mean of the ``k`` lowest (``tail="bottom"``)
    or highest (``"top"``) energies with the reference's count ``k = ⌊⌊10·percent⌋·N / 1000⌋`` — 0.5 % of
    the samples at the default. The reference returns NaN when ``k = 0`` (N < 200 at the default); here
    that raises. Labels are not used.

    Parameters
    ----------
    features : array-like or Tensor of shape (n_samples, n_features)
    percent : float, default=0.5
        Tail size in percent (only ``⌊10·percent⌋`` matters, as in the reference).
    tail : {"bottom", "top"}, default="bottom"
    min_count : int, default=0
        The tail holds at least this many samples: ``k = max(k, min_count)``. 0 (the default) is the
        reference; the ranking job passes 1, so that a target of fewer than 200 samples scores its single
        lowest energy instead of raising (inputs of N ≥ 200 are unchanged).

    Returns
    -------
    score : float
        Higher is better (the paper: in-distribution samples have a higher log-sum-exp).

    Raises
    ------
    ValueError
        When the tail holds no sample (``k = 0``) or ``percent`` is outside (0, 100].

    References
    ----------
    .. [1] Gholami et al. "ETran: Energy-Based Transferability Estimation", ICCV 2023.
    .. [2] Liu, Wang, Owens, Li. "Energy-based Out-of-distribution Detection", NeurIPS 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import etran_energy
    >>> f = np.log(np.arange(1.0, 401.0))[:, None]  # energies log 1, ..., log 400
    >>> round(etran_energy(f), 6)  # mean of the lowest 2: (log 1 + log 2) / 2
    0.346574
    """
    energy, percent = _energies(features, percent, tail, min_count)
    n = energy.shape[0]
    k = _tail_count(n, percent, min_count)
    part = np.partition(energy, k - 1)[:k] if tail == "bottom" else np.partition(energy, n - k)[n - k:]
    return float(part.mean())


def _energies(features, percent: float, tail: str, min_count: int) -> tuple[np.ndarray, float]:
    """Validated arguments of :func:`etran_energy`; each row's energy ``log Σ_j exp(x_ij)``."""
    percent = check_positive_float(percent, "percent")
    if percent > 100:
        raise ValueError(f"percent must be in (0, 100], got {percent!r}")
    if tail not in ("bottom", "top"):
        raise ValueError(f"tail must be 'bottom' or 'top', got {tail!r}")
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 0:
        raise ValueError(f"min_count must be a non-negative int, got {min_count!r}")
    x = as_numpy_matrix(features, "features", min_rows=1)
    return scipy.special.logsumexp(x, axis=1), percent


def _tail_count(n: int, percent: float, min_count: int) -> int:
    """The reference's tail size ``⌊⌊10·percent⌋·N/1000⌋``, at least ``min_count``, at most ``n``."""
    k = min(n, max(int(percent * 10) * n // 1000, int(min_count)))
    if k < 1:
        raise ValueError(
            f"etran_energy: the {percent}% tail of {n} samples is empty (k = ⌊⌊10·percent⌋·N/1000⌋ = 0); "
            f"it needs N >= {int(np.ceil(1000 / max(int(percent * 10), 1)))} samples at percent={percent}"
        )
    return k


def etran_energy_resampled(features, *, percent: float = 0.5, tail: str = "bottom",
                           min_count: int = 0) -> Callable[[np.ndarray], float]:
    """The bootstrap kernel of :func:`etran_energy`: ``kernel(counts)`` equals ``etran_energy(features[idx])``
    for every ``idx`` with ``np.bincount(idx) == counts``, up to the order of the additions — each row's
    energy is computed once, sorted once, and a resample's tail is read off the sorted energies by their
    multiplicities (no features are copied)."""
    energy, percent = _energies(features, percent, tail, min_count)
    order = np.argsort(energy, kind="stable")
    if tail == "top":
        order = order[::-1]
    ranked = energy[order]
    n = energy.shape[0]

    def kernel(counts: np.ndarray) -> float:
        drawn = check_counts(counts, n, min_total=1)[order]
        k = _tail_count(int(drawn.sum()), percent, min_count)
        upto = np.cumsum(drawn)
        last = int(np.searchsorted(upto, k))  # the row (in tail order) holding the k-th draw
        taken = drawn[: last + 1].copy()
        taken[last] -= int(upto[last]) - k  # only as many copies of it as complete the tail
        return float(np.dot(taken, ranked[: last + 1]) / k)

    return kernel


def etran_combine(parts: Mapping[str, Mapping[str, float]], *, cls_weight: float = 0.85) -> dict[str, float]:
    r"""ETran's final score of every model of a pool: ``0.85·mm(S_cls) + 0.15·mm(S_en)`` (higher is better).

    ``mm(v)_m = (v_m − min_pool v) / (max_pool v − min_pool v)``, as ``mgholamikn/ETran: tw.py`` (branch
    ``metric == 'etran'``) computes it over its candidate models. The result of one model depends on the
    whole pool: it is not defined for one model and not comparable across pools.

    Parameters
    ----------
    parts : mapping of str to mapping
        ``{model: {"etran_lda": S_cls, "etran_energy": S_en}}`` for every candidate (at least 2), e.g. the
        registry scores of each candidate on the target.
    cls_weight : float, default=0.85
        Weight of ``mm(S_cls)``; ``1 − cls_weight`` goes to ``mm(S_en)``.

    Returns
    -------
    scores : dict of str to float
        Per model, in [0, 1]; higher is better.

    Raises
    ------
    ValueError
        Fewer than 2 models, a missing or non-finite part, or a part equal across the whole pool.

    References
    ----------
    .. [1] Gholami et al. "ETran: Energy-Based Transferability Estimation", ICCV 2023.

    Examples
    --------
    >>> from app.transferability import etran_combine
    >>> parts = {"a": {"etran_lda": 0.9, "etran_energy": 3.0},
    ...          "b": {"etran_lda": 0.5, "etran_energy": 4.0},
    ...          "c": {"etran_lda": 0.7, "etran_energy": 3.5}}
    >>> {m: round(v, 4) for m, v in etran_combine(parts).items()}
    {'a': 0.85, 'b': 0.15, 'c': 0.5}
    """
    w = float(cls_weight)
    if not (0.0 <= w <= 1.0):
        raise ValueError(f"cls_weight must be in [0, 1], got {cls_weight!r}")
    models, cols = pool_parts(parts, ETRAN_PARTS, "etran_combine")
    s_cls = minmax(cols["etran_lda"], "etran_lda", "etran_combine")
    s_en = minmax(cols["etran_energy"], "etran_energy", "etran_combine")
    w_en = round(1.0 - w, 12)  # 0.15, not 0.15000000000000002
    combined = s_en * w_en + s_cls * w  # the reference's order of operations
    return {m: float(v) for m, v in zip(models, combined, strict=True)}
