"""The units of a ranking job. Each takes ids, opens its own session, writes its results idempotently
(upserts keyed by job/backbone/layer/metric/arm/seed) and returns a small JSON-able summary — so the
local executor can run them in its thread and the Ray executor can ship them to a cluster."""

from __future__ import annotations

import logging
import time
import uuid
import warnings
from typing import Any

import numpy as np
from sqlalchemy import select

from app.db.session import unit_of_work
from app.db.tables import MetricScore, ProbeRun
from app.db.upsert import upsert
from app.runtime import Runtime
from app.services import ranking_inputs as inputs
from app.services.ranking_plan import (
    DIFFICULTY_PREFIX,
    SIMILARITY_METRICS,
    SIMILARITY_PREFIX,
    Plan,
    load_plan,
    scoring_rows,
)

log = logging.getLogger("tscout.ranking")


def _plan(runtime: Runtime, job_id: uuid.UUID) -> Plan:
    with runtime.sessions() as session:
        return load_plan(session, job_id)


def embed_unit(runtime: Runtime, job_id: uuid.UUID, backbone_id: str) -> dict[str, Any]:
    """Embed the target's train split with one backbone at the job's layers (cache-aware)."""
    plan = _plan(runtime, job_id)
    if plan.is_features:
        return {"backbone": backbone_id, "cached": True}
    started = time.perf_counter()
    layers = inputs.job_layers(runtime, plan, backbone_id)
    inputs.train_embeddings(runtime, plan, backbone_id, layers)
    if {"leep", "nce"} & set(plan.metrics):
        inputs.train_source_probs(runtime, plan, backbone_id)
    return {"backbone": backbone_id, "layers": layers, "seconds": time.perf_counter() - started}


def _score_value(name: str, plan: Plan, **data: Any) -> tuple[float | None, dict[str, Any]]:
    from app.transferability import score

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = score(name, task_type=plan.task_type, random_state=plan.seed, **data) \
                if name in ("nleep", "parc", "otdd") else score(name, task_type=plan.task_type, **data)
        except ValueError as exc:  # degenerate input for this metric: record why, keep the job going
            return None, {"error": str(exc)}
    details = {"warnings": sorted({str(w.message) for w in caught})} if caught else {}
    if value is not None and not np.isfinite(value):
        return None, {**details, "error": f"non-finite value {value}"}
    return value, details


def score_unit(runtime: Runtime, job_id: uuid.UUID, backbone_id: str) -> dict[str, Any]:
    """Every metric at every layer of one backbone, domain similarity to its source, target difficulty."""
    from app.transferability import METRICS, task_difficulty

    plan = _plan(runtime, job_id)
    stored = inputs.stored_dataset(runtime, plan)
    train = stored.split("train")
    labels_all = stored.labels[train]
    rows = scoring_rows(labels_all, plan.max_samples, plan.seed)
    labels = labels_all[rows]
    target = {"labels": labels} if plan.task_type == "classification" else {"targets": labels.astype(np.float64)}
    with runtime.sessions() as session:
        done = {(r.layer, r.metric) for r in session.scalars(
            select(MetricScore).where(MetricScore.job_id == job_id, MetricScore.backbone_id == backbone_id))}
    layers = inputs.job_layers(runtime, plan, backbone_id)
    features_by_layer = inputs.train_embeddings(runtime, plan, backbone_id, layers)
    probs = None
    if {"leep", "nce"} & set(plan.metrics) and inputs.has_source_head(runtime, plan, backbone_id):
        probs = inputs.train_source_probs(runtime, plan, backbone_id)
    results: list[tuple[str, str, float | None, str, float, dict[str, Any]]] = []
    for layer in layers:
        features = np.asarray(features_by_layer[layer])[rows]
        for name in plan.metrics:
            if (layer, name) in done:
                continue
            if METRICS[name].inputs[0] == "source_probs":
                if probs is None:
                    continue  # no source head: LEEP/NCE do not apply to this backbone
                if layer != layers[-1]:
                    continue  # the head sees the whole network: one value, stored at the last layer
                data: dict[str, Any] = {"source_probs": probs[rows], **target}
            else:
                data = {"features": features, **target}
            started = time.perf_counter()
            value, details = _score_value(name, plan, **data)
            results.append((layer, name, value, METRICS[name].variant, time.perf_counter() - started, details))
        if plan.similarity and not plan.is_features:
            source = inputs.source_statistics(runtime, plan, backbone_id, layer)
            for name in SIMILARITY_METRICS:
                key = SIMILARITY_PREFIX + name
                if source is None or (layer, key) in done:
                    continue
                src_feats, src_labels = source
                started = time.perf_counter()
                if name == "otdd":
                    if plan.task_type != "classification":
                        continue
                    value, details = _score_value(name, plan, source_features=src_feats, source_labels=src_labels,
                                                  target_features=features, target_labels=labels)
                else:
                    value, details = _score_value(name, plan, a=src_feats, b=features)
                results.append((layer, key, value, METRICS[name].variant, time.perf_counter() - started, details))
    last = layers[-1]
    if plan.task_type == "classification" and (last, DIFFICULTY_PREFIX + "knn_error") not in done:
        try:
            difficulty = task_difficulty(np.asarray(features_by_layer[last])[rows], labels)
            for field_name in ("knn_error", "fisher_separability", "intrinsic_dimension", "imbalance"):
                results.append((last, DIFFICULTY_PREFIX + field_name, float(getattr(difficulty, field_name)),
                                METRICS["task_difficulty"].variant, 0.0, {}))
        except ValueError as exc:
            log.warning("difficulty of %s failed: %s", backbone_id, exc)
    with unit_of_work(runtime.sessions) as session:
        for layer, metric, value, variant, seconds, details in results:
            upsert(session, MetricScore, {"job_id": job_id, "backbone_id": backbone_id, "layer": layer,
                                          "metric": metric},
                   {"value": value, "variant": variant, "seconds": seconds,
                    "details": {**details, "n_samples": int(len(rows)), "seed": plan.seed}})
    return {"backbone": backbone_id, "scores": len(results)}


def probe_unit(runtime: Runtime, job_id: uuid.UUID, backbone_id: str, layer: str, arm: str,
               seed: int) -> dict[str, Any]:
    """One probe run (arm × seed) of one candidate; skipped when its row already exists."""
    with runtime.sessions() as session:
        existing = session.scalar(select(ProbeRun).where(
            ProbeRun.job_id == job_id, ProbeRun.backbone_id == backbone_id, ProbeRun.arm == arm,
            ProbeRun.seed == seed))
        if existing is not None:
            return {"backbone": backbone_id, "arm": arm, "seed": seed, "metric": existing.metric, "cached": True}
    plan = _plan(runtime, job_id)
    result = inputs.run_probe_arm(runtime, plan, backbone_id, layer, arm, seed)
    with unit_of_work(runtime.sessions) as session:
        upsert(session, ProbeRun, {"job_id": job_id, "backbone_id": backbone_id, "arm": arm, "seed": seed},
               {"layer": layer, "metric": result["metric"], "steps": result["steps"],
                "seconds": result["seconds"], "details": result["details"], "curve": result["curve"]})
    return {"backbone": backbone_id, "arm": arm, "seed": seed, "metric": result["metric"]}
