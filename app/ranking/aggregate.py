"""Per-metric normalisation across candidates and rank aggregation.

Raw metric values are only comparable between candidates on the same target (LogME is a log density,
GBC a negative overlap, …), so every metric is first normalised across the candidate set, with its
direction applied so that **higher is better** for every normalised column.

Methods (:data:`AGGREGATIONS`):

* ``rank_mean`` — the mean of per-metric ranks (unweighted; robust to scale);
* ``weighted`` — a weighted mean of min-max normalised columns (user-given weights);
* ``rank_weighted`` — a weighted sum of **normalised ranks** in [0, 1] (:func:`normalised_ranks`; a
  missing value counts :data:`MISSING_RANK`): the family of the fitted default ranking;
* ``zscore_weighted`` — a weighted sum of per-metric **z-scores** across the candidates, clipped to
  ±:data:`ZSCORE_CLIP` (:func:`zscores`; a missing value counts 0, the mean): the other family of the
  fitted default, which keeps how far apart the candidates are, not only their order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

AGGREGATIONS = ("rank_mean", "weighted", "rank_weighted", "zscore_weighted")
#: the families a fitted default combines metrics with: ``<family>_weighted`` is the aggregation method
COMBINATIONS = ("rank", "zscore")
MISSING_RANK = 0.5
ZSCORE_CLIP = 3.0


def rank_with_ties(values: Sequence[float]) -> np.ndarray:
    """Rank 1 = best (largest); ties share the mean rank; NaN ranks last."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {v.shape}")
    filled = np.where(np.isfinite(v), v, -np.inf)
    order = np.argsort(-filled, kind="stable")
    ranks = np.empty(len(v), dtype=np.float64)
    ranks[order] = np.arange(1, len(v) + 1, dtype=np.float64)
    for value in np.unique(filled):
        tie = filled == value
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


def normalise(values: Sequence[float], *, higher_is_better: bool = True) -> np.ndarray:
    """Min-max normalise to [0, 1] with 1 = best; a constant column maps to 0.5; NaN stays NaN."""
    v = np.asarray(values, dtype=np.float64)
    if not higher_is_better:
        v = -v
    finite = np.isfinite(v)
    out = np.full(v.shape, np.nan)
    if not finite.any():
        return out
    lo, hi = v[finite].min(), v[finite].max()
    out[finite] = 0.5 if hi - lo <= 1e-12 * max(1.0, abs(hi)) else (v[finite] - lo) / (hi - lo)
    return out


def normalised_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks of ``values`` scaled to [0, 1] (1 = highest), ties averaged; NaN gets :data:`MISSING_RANK`.
    A single finite item, or all-missing values, gets 0.5."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) == 0:
        raise ValueError(f"need a non-empty 1-d array of values, got shape {v.shape}")
    out = np.full(len(v), MISSING_RANK)
    ok = np.flatnonzero(np.isfinite(v))
    if len(ok) < 2:
        return out
    vals = v[ok]
    order = np.argsort(vals, kind="stable")
    ranks = np.empty(len(vals))
    ranks[order] = np.arange(len(vals), dtype=np.float64)
    for u in np.unique(vals):  # average ties
        tied = vals == u
        ranks[tied] = ranks[tied].mean()
    out[ok] = ranks / (len(vals) - 1)
    return out


def zscores(values: Sequence[float], clip: float = ZSCORE_CLIP) -> np.ndarray:
    """``(v − mean) / sd`` over the finite values (population sd), clipped to ±``clip``; NaN, and every
    value of a column with fewer than 2 finite or no spread, gets 0 (the mean: no evidence either way)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) == 0:
        raise ValueError(f"need a non-empty 1-d array of values, got shape {v.shape}")
    if not (np.isfinite(clip) and clip > 0):
        raise ValueError(f"clip must be a positive number, got {clip!r}")
    out = np.zeros(len(v))
    ok = np.isfinite(v)
    if ok.sum() < 2:
        return out
    mu, sd = float(v[ok].mean()), float(v[ok].std())
    if sd <= 1e-12 * max(1.0, abs(mu)):
        return out
    out[ok] = np.clip((v[ok] - mu) / sd, -clip, clip)
    return out


def family_normalise(values: Sequence[float], family: str) -> np.ndarray:
    """One oriented column (higher = better) normalised by a fitted default's family (:data:`COMBINATIONS`)."""
    if family == "rank":
        return normalised_ranks(values)
    if family == "zscore":
        return zscores(values)
    raise ValueError(f"unknown combination {family!r}; known: {COMBINATIONS}")


@dataclass(frozen=True)
class AggregateResult:
    """Aggregate score per candidate (higher = better), its rank, and the normalised metric columns."""

    score: np.ndarray  # (n_candidates,)
    rank: np.ndarray  # (n_candidates,), 1 = best
    normalised: dict[str, np.ndarray]
    metric_ranks: dict[str, np.ndarray]


def aggregate(
    scores: Mapping[str, Sequence[float]],
    directions: Mapping[str, bool],
    *,
    method: str = "rank_mean",
    weights: Mapping[str, float] | None = None,
) -> AggregateResult:
    """Aggregate several metric columns over the same candidates.

    Parameters
    ----------
    scores : {metric: (n_candidates,) values}
    directions : {metric: True if higher is better}
    method : one of :data:`AGGREGATIONS` (module docstring); every method but ``rank_mean`` needs
        ``weights``.

    Returns
    -------
    AggregateResult
        ``score`` is ``-(mean rank)`` for ``rank_mean`` so that higher is always better.
    """
    if not scores:
        raise ValueError("no metric scores to aggregate")
    if method not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {method!r}")
    lengths = {len(v) for v in scores.values()}
    if len(lengths) != 1:
        raise ValueError(f"every metric needs one value per candidate, got lengths {sorted(lengths)}")
    missing = [m for m in scores if m not in directions]
    if missing:
        raise ValueError(f"no direction given for metrics {missing}")
    if method in ("rank_weighted", "zscore_weighted"):
        family = method.removesuffix("_weighted")
        normalised = {m: family_normalise(np.asarray(v, dtype=np.float64) * (1.0 if directions[m] else -1.0), family)
                      for m, v in scores.items()}
    else:
        normalised = {m: normalise(v, higher_is_better=directions[m]) for m, v in scores.items()}
    metric_ranks = {m: rank_with_ties(np.nan_to_num(n, nan=-np.inf)) for m, n in normalised.items()}
    if method == "rank_mean":
        score = -np.mean(np.stack(list(metric_ranks.values())), axis=0)
    else:
        if not weights:
            raise ValueError(f"aggregation {method!r} needs weights per metric")
        unknown = sorted(set(weights) - set(scores))
        if unknown:
            raise ValueError(f"weights name metrics that were not computed: {unknown}")
        w = np.array([float(weights.get(m, 0.0)) for m in scores])
        if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be non-negative with a positive sum, got {dict(weights)}")
        cols = np.stack([np.nan_to_num(normalised[m], nan=0.0) for m in scores])
        score = (w[:, None] * cols).sum(axis=0) / w.sum()
    return AggregateResult(score=score, rank=rank_with_ties(score), normalised=normalised,
                           metric_ranks=metric_ranks)


def choose_layers(
    per_layer: Mapping[str, Mapping[str, float]],
    directions: Mapping[str, bool],
    *,
    mode: str = "best",
    layer_order: Sequence[str] | None = None,
) -> tuple[str, dict[str, float], dict[str, float]]:
    """Pick one backbone's representative layer from its per-layer metric values.

    Parameters
    ----------
    per_layer : {layer: {metric: value}}
    mode : ``"best"`` (the layer with the best mean per-metric rank among this backbone's layers),
        ``"last"`` (the deepest layer, ``layer_order[-1]``) or ``"mean"`` (metric values averaged over layers,
        as transformer-ranker's ``layermean``).

    Returns
    -------
    (layer, metric values used for the ranking, per-layer aggregate score (higher = better))
    """
    if not per_layer:
        raise ValueError("no layers scored")
    layers = list(layer_order) if layer_order else list(per_layer)
    layers = [ly for ly in layers if ly in per_layer]
    metrics = sorted({m for values in per_layer.values() for m in values})
    columns = {m: [per_layer[ly].get(m, np.nan) for ly in layers] for m in metrics}
    layer_scores = aggregate(columns, {m: directions[m] for m in metrics}).score
    per_layer_score = {ly: float(s) for ly, s in zip(layers, layer_scores, strict=True)}
    if mode == "best":
        best = layers[int(np.argmax(layer_scores))]
        return best, dict(per_layer[best]), per_layer_score
    if mode == "last":
        return layers[-1], dict(per_layer[layers[-1]]), per_layer_score
    if mode == "mean":
        means = {m: float(np.nanmean(columns[m])) if np.isfinite(columns[m]).any() else float("nan")
                 for m in metrics}
        return "mean", means, per_layer_score
    raise ValueError(f"layer mode must be 'best', 'last' or 'mean', got {mode!r}")
