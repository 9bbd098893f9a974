"""Bootstrap rank intervals for the rank stage: resample the scored rows, recompute the metrics the registry
marks cheap enough (``MetricSpec.bootstrap``) at each backbone's chosen layer, re-aggregate, and read each
backbone's rank interval (widened to contain its reported rank) and its probability of ranking first.

Every replicate value goes through the score cache like the score stage's (keyed by the resampled rows'
digest), so a repeated job's intervals are a lookup; the resamples are drawn from the plan's seed, so
they are the same rows every time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from app.db.score_cache import SqlScoreCache, rows_digest
from app.db.session import unit_of_work
from app.ranking import bootstrap_resamples, intervals_from_replicates
from app.services.rankings.inputs import RankingInputs
from app.services.rankings.score_keys import ScoreKeys
from app.services.rankings.stages.score import metric_value


def rank_intervals(inputs: RankingInputs, names: list[str], chosen_layers: dict[str, str], metrics: list[str],
                   weights: dict[str, float] | None, method: str, should_stop: Callable[[], bool],
                   point_ranks: Mapping[str, float] | None = None) -> dict[str, tuple[Any, Any, Any]]:
    """``{backbone: (rank_low, rank_high, p_top1)}`` from ``plan.bootstrap`` replicates."""
    from app.embeddings.pipeline import SOURCE_PROBS
    from app.transferability import METRICS

    plan = inputs.plan
    runtime = inputs.runtime
    keys = ScoreKeys(inputs)
    resamples = bootstrap_resamples(len(inputs.rows), plan.bootstrap, random_state=plan.seed,
                                    labels=inputs.labels if plan.classification else None)
    digests = [rows_digest(inputs.rows[idx]) for idx in resamples]
    head = any(METRICS[m].needs_source_head for m in metrics)
    probs = {b: inputs.source_probs(b) for b in names} if head else {}

    # (backbone, metric) → the layers whose values are averaged (one for a chosen layer, all for "mean")
    use = {b: inputs.layers(b) if chosen_layers[b] == "mean" else [chosen_layers[b]] for b in names}
    parts: dict[tuple[str, str], list[str | None]] = {}  # (b, m) → one input digest per layer (None: n/a)
    for b in names:
        for m in metrics:
            if METRICS[m].needs_source_head:
                parts[(b, m)] = [None if probs.get(b) is None else keys.embedding(b, SOURCE_PROBS)]
            else:
                parts[(b, m)] = [keys.embedding(b, ly) for ly in use[b]]
    wanted = {(b, m, i, r): keys.key(m, [digest], rows=digests[r])
              for (b, m), layer_digests in parts.items() for i, digest in enumerate(layer_digests)
              if digest is not None for r in range(len(resamples))}
    with runtime.sessions() as session:
        hits = SqlScoreCache(session).lookup(wanted.values())
    fresh: list[dict[str, Any]] = []

    def value(b: str, m: str, r: int) -> float:
        spec = METRICS[m]
        idx = resamples[r]
        per_layer = []
        for i, digest in enumerate(parts[(b, m)]):
            if digest is None:
                return float("nan")
            key = wanted[(b, m, i, r)]
            hit = hits.get(key)
            if hit is not None:
                v = hit.value
            else:
                data = ({"source_probs": probs[b][inputs.rows][idx]} if spec.needs_source_head
                        else {"features": inputs.scored(b, use[b][i])[idx]})
                started = time.perf_counter()
                v, details = metric_value(m, plan.task_type, plan.seed, **data, **inputs.target(idx))
                fresh.append({"cache_key": key, "metric": m, "version": spec.version, "variant": spec.variant,
                              "value": v, "seconds": time.perf_counter() - started,
                              "details": {**details, "bootstrap": True}})
            if v is None:
                return float("nan")
            per_layer.append(v)
        return float(np.mean(per_layer))

    replicates = []
    for r in range(len(resamples)):
        if should_stop():
            break
        replicates.append({m: [value(b, m, r) for b in names] for m in metrics})
    if fresh:
        with unit_of_work(runtime.sessions) as session:
            SqlScoreCache(session).record(fresh)
    directions = plan.directions
    return intervals_from_replicates(
        names, replicates, {m: directions[m] for m in metrics}, method=method,
        weights={m: w for m, w in (weights or {}).items() if m in metrics} or None, point_ranks=point_ranks)
