"""Rank uncertainty: bootstrap the target samples, recompute the metrics, re-rank the candidates.

Two halves, so that a caller can fetch a replicate's metric values from a cache instead of recomputing
them: :func:`bootstrap_resamples` draws the replicates' row indices (stratified by class), and
:func:`intervals_from_replicates` turns the metric values of each replicate into rank intervals.
:func:`bootstrap_rank_intervals` is both in one call, for a ``metric_fn`` that computes each value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from app.ranking.aggregate import aggregate


def _resample(labels: np.ndarray | None, n: int, rng: np.random.Generator) -> np.ndarray:
    """A bootstrap sample of indices, stratified by class for 1-D labels so every class survives."""
    if labels is None or labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        return rng.integers(0, n, size=n)
    parts = [rng.choice(np.flatnonzero(labels == c), size=int((labels == c).sum()), replace=True)
             for c in np.unique(labels)]
    return np.sort(np.concatenate(parts))


def bootstrap_resamples(n_samples: int, n_boot: int, *, labels: np.ndarray | None = None,
                        random_state: int = 0) -> list[np.ndarray]:
    """``n_boot`` bootstrap samples of row indices in ``[0, n_samples)`` (stratified by class for 1-D integer
    ``labels``), the same for the same arguments."""
    if n_boot < 2:
        raise ValueError(f"n_boot must be at least 2, got {n_boot}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    if labels is not None and len(labels) != n_samples:
        raise ValueError(f"labels has {len(labels)} rows, expected n_samples={n_samples}")
    rng = np.random.default_rng(random_state)
    return [_resample(labels, n_samples, rng) for _ in range(n_boot)]


def intervals_from_replicates(
    candidates: Sequence[str],
    replicates: Sequence[Mapping[str, Sequence[float]]],
    directions: Mapping[str, bool],
    *,
    level: float = 0.95,
    method: str = "rank_mean",
    weights: Mapping[str, float] | None = None,
    point_ranks: Mapping[str, float] | None = None,
) -> dict[str, tuple[float, float, float]]:
    """Percentile intervals of each candidate's aggregate rank over the replicates.

    Parameters
    ----------
    replicates : sequence of ``{metric: (n_candidates,) values}``
        One mapping per bootstrap replicate, values in ``candidates`` order.
    point_ranks : {candidate: rank}, optional
        The ranks the ranking reports; each interval is widened to contain its candidate's (a percentile
        interval of a skewed rank distribution can miss the point estimate).

    Returns
    -------
    ``{candidate: (low, high, fraction of replicates where it ranked first)}``; empty with fewer than two
    replicates.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if point_ranks is not None and set(point_ranks) != set(candidates):
        raise ValueError(f"point_ranks must name every candidate, got {sorted(point_ranks)}")
    if len(replicates) < 2:
        return {}
    ranks = np.stack([aggregate(cols, directions, method=method, weights=weights).rank for cols in replicates])
    alpha = (1 - level) / 2
    low, high = np.quantile(ranks, [alpha, 1 - alpha], axis=0)
    top = (ranks <= 1.0).mean(axis=0)
    out = {}
    for i, c in enumerate(candidates):
        lo, hi = float(low[i]), float(high[i])
        if point_ranks is not None:
            lo, hi = min(lo, float(point_ranks[c])), max(hi, float(point_ranks[c]))
        out[c] = (lo, hi, float(top[i]))
    return out


def bootstrap_rank_intervals(
    candidates: Sequence[str],
    metric_fn: Callable[[str, str, np.ndarray], float],
    metrics: Sequence[str],
    directions: Mapping[str, bool],
    *,
    n_samples: int,
    labels: np.ndarray | None = None,
    n_boot: int = 30,
    level: float = 0.95,
    random_state: int = 0,
    method: str = "rank_mean",
    weights: Mapping[str, float] | None = None,
    should_stop: Callable[[], bool] | None = None,
    point_ranks: Mapping[str, float] | None = None,
) -> dict[str, tuple[float, float, float]]:
    """Percentile intervals of each candidate's aggregate rank under resampling of the target samples.

    ``metric_fn(candidate, metric, indices)`` recomputes one metric on the resampled rows. All candidates
    share each replicate's indices (a paired bootstrap), so the interval reflects how stable the *order*
    is, not only each score. ``point_ranks`` as in :func:`intervals_from_replicates`.

    Returns ``{candidate: (low, high, fraction of replicates where it ranked first)}``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    replicates = []
    for idx in bootstrap_resamples(n_samples, n_boot, labels=labels, random_state=random_state):
        if should_stop is not None and should_stop():
            break
        replicates.append({m: [metric_fn(c, m, idx) for c in candidates] for m in metrics})
    return intervals_from_replicates(candidates, replicates, directions, level=level, method=method,
                                     weights=weights, point_ranks=point_ranks)
