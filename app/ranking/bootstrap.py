"""Rank uncertainty: bootstrap the target samples, recompute the metrics, re-rank the candidates."""

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
) -> dict[str, tuple[float, float, float]]:
    """Percentile intervals of each candidate's aggregate rank under resampling of the target samples.

    ``metric_fn(candidate, metric, indices)`` recomputes one metric on the resampled rows. All candidates
    share each replicate's indices (a paired bootstrap), so the interval reflects how stable the *order*
    is, not only each score.

    Returns ``{candidate: (low, high, fraction of replicates where it ranked first)}``.
    """
    if n_boot < 2:
        raise ValueError(f"n_boot must be at least 2, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(random_state)
    ranks = np.empty((n_boot, len(candidates)))
    for b in range(n_boot):
        if should_stop is not None and should_stop():
            ranks = ranks[:b]
            break
        idx = _resample(labels, n_samples, rng)
        cols = {m: [metric_fn(c, m, idx) for c in candidates] for m in metrics}
        ranks[b] = aggregate(cols, directions, method=method, weights=weights).rank
    if len(ranks) < 2:
        return {}
    alpha = (1 - level) / 2
    low, high = np.quantile(ranks, [alpha, 1 - alpha], axis=0)
    top = (ranks <= 1.0).mean(axis=0)
    return {c: (float(low[i]), float(high[i]), float(top[i])) for i, c in enumerate(candidates)}
