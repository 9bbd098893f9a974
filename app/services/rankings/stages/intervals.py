"""Bootstrap rank intervals for the rank stage: resample the scored rows, recompute the metrics the registry
marks cheap enough (``MetricSpec.bootstrap``) at each backbone's chosen layer, re-aggregate, and read each
backbone's rank interval and its probability of ranking first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from app.ranking import bootstrap_rank_intervals
from app.services.rankings.inputs import RankingInputs


def rank_intervals(inputs: RankingInputs, names: list[str], chosen_layers: dict[str, str], metrics: list[str],
                   weights: dict[str, float] | None, method: str,
                   should_stop: Callable[[], bool]) -> dict[str, tuple[Any, Any, Any]]:
    """``{backbone: (rank_low, rank_high, p_top1)}`` from ``plan.bootstrap`` replicates."""
    from app.transferability import METRICS, score

    plan = inputs.plan
    feats: dict[str, list[np.ndarray]] = {}
    probs: dict[str, np.ndarray | None] = {}
    head = any(METRICS[m].needs_source_head for m in metrics)
    for b in names:
        layer = chosen_layers[b]
        use = inputs.layers(b) if layer == "mean" else [layer]
        feats[b] = [inputs.scored(b, ly) for ly in use]
        if head:
            p = inputs.source_probs(b)
            probs[b] = None if p is None else p[inputs.rows]

    def metric_fn(b: str, m: str, idx: np.ndarray) -> float:
        target = inputs.target(idx)
        try:
            if METRICS[m].needs_source_head:
                if probs.get(b) is None:
                    return float("nan")
                return score(m, task_type=plan.task_type, source_probs=probs[b][idx], **target)
            return float(np.mean([score(m, task_type=plan.task_type, features=f[idx], **target) for f in feats[b]]))
        except ValueError:
            return float("nan")

    directions = plan.directions
    return bootstrap_rank_intervals(
        names, metric_fn, metrics, {m: directions[m] for m in metrics}, n_samples=len(inputs.rows),
        labels=inputs.labels if plan.classification else None, n_boot=plan.bootstrap, random_state=plan.seed,
        method=method, weights={m: w for m, w in (weights or {}).items() if m in metrics} or None,
        should_stop=should_stop)
