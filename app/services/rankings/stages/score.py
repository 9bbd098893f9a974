"""Stage 2, score: every requested metric at every job layer of one backbone, its domain similarity to the
source's stored sample, and the target's difficulty in its features — one ``metric_scores`` row each.

What a metric needs is read from its :class:`~app.transferability.MetricSpec`: head metrics (LEEP, NCE)
read the source head once per backbone (stored at the last layer), seeded metrics receive the plan's seed,
similarity metrics are those the registry computes for the task type. A metric that cannot be computed on
this input records why (``details.error``) instead of failing the job.
"""

from __future__ import annotations

import logging
import time
import uuid
import warnings
from typing import Any

import numpy as np
from sqlalchemy import select

from app.db.session import unit_of_work
from app.db.tables import MetricScore
from app.db.upsert import upsert
from app.runtime import Runtime
from app.services.rankings.inputs import RankingInputs
from app.services.rankings.plan import DIFFICULTY_PREFIX, SIMILARITY_PREFIX

log = logging.getLogger("tscout.ranking")
DIFFICULTY_FIELDS = ("knn_error", "fisher_separability", "intrinsic_dimension", "imbalance")


def metric_value(name: str, task_type: str, seed: int, **data: Any) -> tuple[float | None, dict[str, Any]]:
    """One metric on one input: (value, details). Degenerate input gives ``None`` with the reason; warnings
    the metric raised (non-convergence, subsampling) are kept in the details."""
    from app.transferability import METRICS, score

    extra = {"random_state": seed} if METRICS[name].random_state else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = score(name, task_type=task_type, **extra, **data)
        except ValueError as exc:  # degenerate input for this metric: record why, keep the job going
            return None, {"error": str(exc)}
    details = {"warnings": sorted({str(w.message) for w in caught})} if caught else {}
    if value is not None and not np.isfinite(value):
        return None, {**details, "error": f"non-finite value {value}"}
    return value, details


def score_unit(runtime: Runtime, job_id: uuid.UUID, backbone_id: str) -> dict[str, Any]:
    """Every metric at every layer of one backbone, domain similarity to its source, target difficulty."""
    from app.transferability import METRICS, similarity_metrics, spec_of, task_difficulty

    inputs = RankingInputs.load(runtime, job_id)
    plan = inputs.plan
    with runtime.sessions() as session:
        done = {(r.layer, r.metric) for r in session.scalars(
            select(MetricScore).where(MetricScore.job_id == job_id, MetricScore.backbone_id == backbone_id))}
    layers = inputs.layers(backbone_id)
    target = inputs.target()
    probs = None
    if any(METRICS[m].needs_source_head for m in plan.metrics):
        probs = inputs.source_probs(backbone_id)
    results: list[tuple[str, str, float | None, str, float, dict[str, Any]]] = []

    def measure(layer: str, key: str, name: str, **data: Any) -> None:
        started = time.perf_counter()
        value, details = metric_value(name, plan.task_type, plan.seed, **data)
        results.append((layer, key, value, METRICS[name].variant, time.perf_counter() - started, details))

    for layer in layers:
        features = inputs.scored(backbone_id, layer)
        for name in plan.metrics:
            if (layer, name) in done:
                continue
            if METRICS[name].needs_source_head:
                # no head: the metric does not apply; the head sees the whole network: one value, at the last layer
                if probs is not None and layer == layers[-1]:
                    measure(layer, name, name, source_probs=probs[inputs.rows], **target)
            else:
                measure(layer, name, name, features=features, **target)
        if plan.similarity and not plan.is_features:
            source = inputs.source_statistics(backbone_id, layer)
            for name in similarity_metrics(plan.task_type):
                key = SIMILARITY_PREFIX + name
                if source is None or (layer, key) in done:
                    continue
                src_feats, src_labels = source
                if "source_labels" in METRICS[name].inputs:
                    measure(layer, key, name, source_features=src_feats, source_labels=src_labels,
                            target_features=features, target_labels=inputs.labels)
                else:
                    measure(layer, key, name, a=src_feats, b=features)
    last = layers[-1]
    if plan.classification and (last, DIFFICULTY_PREFIX + DIFFICULTY_FIELDS[0]) not in done:
        try:
            difficulty = task_difficulty(inputs.scored(backbone_id, last), inputs.labels)
            for field_name in DIFFICULTY_FIELDS:
                results.append((last, DIFFICULTY_PREFIX + field_name, float(getattr(difficulty, field_name)),
                                spec_of(task_difficulty).variant, 0.0, {}))
        except ValueError as exc:
            log.warning("difficulty of %s failed: %s", backbone_id, exc)
    with unit_of_work(runtime.sessions) as session:
        for layer, metric, value, variant, seconds, details in results:
            upsert(session, MetricScore, {"job_id": job_id, "backbone_id": backbone_id, "layer": layer,
                                          "metric": metric},
                   {"value": value, "variant": variant, "seconds": seconds,
                    "details": {**details, "n_samples": int(len(inputs.rows)), "seed": plan.seed}})
    return {"backbone": backbone_id, "scores": len(results)}
