"""Stage 2, score: the requested metrics of one backbone where they can change the answer, its domain
similarity to the source's stored sample, and the target's difficulty in its features — one
``metric_scores`` row each, every value read from the score cache across jobs when it was computed before.

What a metric needs is read from its :class:`~app.transferability.MetricSpec`: head metrics (LEEP, NCE)
read the source head once per backbone (stored at the last layer), seeded metrics receive the plan's seed,
``job_kwargs`` are passed as given, the similarity metrics are the request's (frozen at creation: the task
type's defaults for ``similarity: true``).
A metric that cannot be computed on this input records why (``details.error``) instead of failing the job.

Only the work the answer needs, in three passes per backbone:

1. the cheap metrics (``cost="cheap"``) at every job layer, the head metrics, the target difficulty; a
   layer whose features are bitwise those of a shallower one (a duplicate tap) copies its twin's values
   (``details.duplicate_of``) instead of computing them again;
2. the expensive metrics (``cost="expensive"``) at the *candidate* layers only: every layer for
   ``layer_mode="mean"`` (the answer averages them), the last one for ``"last"``, the layers the fitted
   default's rule chooses among for ``"fitted"`` (every layer for ``best``, the deeper half for
   ``best_deep``: its choice pools every backbone, so no one unit can narrow it), else the last one plus the
   best by the cheap metrics (all layers when the plan has no cheap layer metric). A layer outside the
   candidates has no value for an expensive metric, so the rank stage ranks it last on that metric;
3. the similarity metrics at the layer the rank stage reads them from (the chosen layer, by the same rule
   as the rank stage on the values of passes 1–2; the last one for ``"mean"`` and ``"fitted"``) — they do not take part in
   the layer choice or the aggregate, so their values elsewhere change nothing.

The score cache key of a value (:func:`app.db.score_cache.score_cache_key`) is made of the embedding
cache key of the features it reads (or of the source-head probabilities; for a similarity, also the
digest of the source sample), the digest of the scored rows, the task type, the metric, its variant, the
keyword arguments it received and the spec's version. A hit costs a lookup: the row is stored with
``seconds=0`` and ``details.cached=true`` (the original cost in ``details.computed_seconds``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select

from app.db.score_cache import SqlScoreCache, score_cache_key
from app.db.session import unit_of_work
from app.db.tables import MetricScore
from app.db.upsert import upsert_many
from app.runtime import Runtime
from app.services.rankings.inputs import RankingInputs
from app.services.rankings.plan import DIFFICULTY_PREFIX
from app.services.rankings.recorded_warnings import recorded_warnings
from app.services.rankings.score_keys import ScoreKeys, metric_params
from app.services.rankings.stages.score_tasks import (
    Task,
    duplicate_layers,
    feature_task,
    head_layer,
    similarity_tasks,
)

log = logging.getLogger("tscout.ranking")
DIFFICULTY_FIELDS = ("knn_error", "fisher_separability", "intrinsic_dimension", "imbalance")


def metric_value(name: str, task_type: str, seed: int, **data: Any) -> tuple[float | None, dict[str, Any]]:
    """One metric on one input: (value, details). Degenerate input gives ``None`` with the reason; warnings
    the metric raised (non-convergence, subsampling) are kept in the details."""
    from app.transferability import score

    with recorded_warnings() as caught:
        try:
            value = score(name, task_type=task_type, **metric_params(name, seed), **data)
        except ValueError as exc:  # degenerate input for this metric: record why, keep the job going
            return None, {"error": str(exc)}
    details = {"warnings": sorted({str(w.message) for w in caught})} if caught else {}
    if value is not None and not np.isfinite(value):
        return None, {**details, "error": f"non-finite value {value}"}
    return value, details


@dataclass
class _Results:
    rows: list[tuple[str, str, float | None, str, float, dict[str, Any]]] = field(default_factory=list)
    fresh: list[dict[str, Any]] = field(default_factory=list)
    values: dict[tuple[str, str], float] = field(default_factory=dict)


def score_backbone(inputs: RankingInputs, backbone_id: str) -> dict[str, Any]:
    """The requested metrics of one backbone where they change the answer, domain similarity to its source,
    target difficulty; every value read from the score cache when it is there (the score stage's unit,
    :func:`~app.services.rankings.stages.intervals.score_then_bootstrap`, calls it)."""
    from app.ranking import choose_layers
    from app.transferability import METRICS, spec_of, task_difficulty

    runtime = inputs.runtime
    job_id = inputs.plan.job_id
    plan = inputs.plan
    keys = ScoreKeys(inputs)
    out = _Results()
    with runtime.sessions() as session:
        for r in session.scalars(select(MetricScore).where(MetricScore.job_id == job_id,
                                                           MetricScore.backbone_id == backbone_id)):
            out.values[(r.layer, r.metric)] = float("nan") if r.value is None else r.value
    layers = inputs.layers(backbone_id)
    last = layers[-1]
    n_rows = int(len(inputs.rows))
    twins: dict[str, str] | None = None  # duplicate taps, found when a value must be computed (it loads features)

    def feature_tasks(layers_: list[str], names: list[str]) -> list[Task]:
        return [t for layer in layers_ for name in names
                if (t := feature_task(inputs, keys, backbone_id, layer, name)) is not None]

    def run(tasks: list[Task]) -> None:
        nonlocal twins
        tasks = [t for t in tasks if (t.layer, t.key) not in out.values]
        if not tasks:
            return
        with runtime.sessions() as session:
            hits = SqlScoreCache(session).lookup(t.cache_key for t in tasks)
        for t in tasks:
            if (hit := hits.get(t.cache_key)) is not None:
                add(t, hit.value, 0.0, {**hit.details, "cached": True, "computed_seconds": hit.seconds})
        tasks = [t for t in tasks if t.cache_key not in hits]
        if not tasks:
            return
        # a duplicate tap copies its twin's value when the twin is computed anyway (before, or in this batch)
        twins = duplicate_layers(inputs, backbone_id, layers) if twins is None else twins
        pending = {(t.layer, t.key) for t in tasks}
        copies = [t for t in tasks if t.features and t.layer in twins
                  and ((twins[t.layer], t.key) in out.values or (twins[t.layer], t.key) in pending)]
        for t in tasks:
            if t not in copies:
                started = time.perf_counter()
                value, details = metric_value(t.name, plan.task_type, plan.seed, **t.data())
                seconds = time.perf_counter() - started
                fresh(t, value, seconds, {**details, "dim": t.dim()})
        for t in copies:
            twin = twins[t.layer]
            value = out.values[(twin, t.key)]
            twin_details = next((r[5] for r in out.rows if r[0] == twin and r[1] == t.key), {})
            details = {k: v for k, v in twin_details.items() if k not in ("cached", "computed_seconds")}
            # cached under its own key too, so a repeated job finds it without looking for twins
            fresh(t, None if np.isnan(value) else value, 0.0, {**details, "duplicate_of": twin})

    def fresh(t: Task, value: float | None, seconds: float, details: dict[str, Any]) -> None:
        spec = METRICS[t.name]
        out.fresh.append({"cache_key": t.cache_key, "metric": t.name, "version": spec.version,
                          "variant": spec.variant, "value": value, "seconds": seconds, "details": details})
        add(t, value, seconds, {**details, "cached": False})

    def add(t: Task, value: float | None, seconds: float, details: dict[str, Any]) -> None:
        out.rows.append((t.layer, t.key, value, METRICS[t.name].variant, seconds, details))
        out.values[(t.layer, t.key)] = float("nan") if value is None else value

    # head metrics read the head alone (one value per backbone); RSA/DDS read it next to each layer's features
    head = [m for m in plan.metrics if METRICS[m].head_only]
    cheap = [m for m in plan.metrics if not METRICS[m].head_only and METRICS[m].cost == "cheap"]
    expensive = [m for m in plan.metrics if not METRICS[m].head_only and METRICS[m].cost != "cheap"]

    # 1. cheap metrics everywhere; head metrics once (the head sees the whole network: stored at the last layer)
    tasks = feature_tasks(layers, cheap)
    probs = inputs.source_probs(backbone_id) if head else None
    if probs is not None:
        probs_key = keys.embedding(backbone_id, head_layer("source_probs"))
        for name in head:
            tasks.append(Task(last, name, name, keys.key(name, [probs_key]),
                              lambda: {"source_probs": probs[inputs.rows], **inputs.target()},
                              lambda: int(probs.shape[1])))
    run(tasks)
    _difficulty(runtime, inputs, keys, backbone_id, last, out, spec_of(task_difficulty))

    # 2. expensive metrics at the candidate layers
    layer_metrics = cheap + expensive

    def per_layer(metrics: list[str]) -> dict[str, dict[str, float]]:
        got = {ly: {m: out.values[(ly, m)] for m in metrics if (ly, m) in out.values} for ly in layers}
        return {ly: vals for ly, vals in got.items() if vals}

    directions = plan.directions
    if expensive:
        if plan.layer_mode == "mean" or not per_layer(cheap):
            candidates = list(layers)
        elif plan.layer_mode == "last":
            candidates = [last]
        elif plan.layer_mode == "fitted":
            rule = plan.resolved_aggregation.get("layer_rule")
            candidates = list(layers[len(layers) // 2:]) if rule == "best_deep" else list(layers)
        else:
            best = choose_layers(per_layer(cheap), directions, mode="best", layer_order=layers)[0]
            candidates = [ly for ly in layers if ly in (best, last)]
        run(feature_tasks(candidates, expensive))

    # 3. similarity at the layer the rank stage reads it from
    if plan.similarity and not plan.is_features:
        scored = per_layer(layer_metrics)
        look = last
        if scored and plan.layer_mode not in ("mean", "fitted"):
            chosen = choose_layers(scored, directions, mode=plan.layer_mode, layer_order=layers)[0]
            look = last if chosen == "mean" else chosen
        run(similarity_tasks(inputs, keys, backbone_id, look, plan.similarity))

    with unit_of_work(runtime.sessions) as session:
        SqlScoreCache(session).record(out.fresh)
        upsert_many(session, MetricScore,
                    [{"job_id": job_id, "backbone_id": backbone_id, "layer": layer, "metric": metric,
                      "value": value, "variant": variant, "seconds": seconds,
                      "details": {**details, "n_samples": n_rows, "seed": plan.seed}}
                     for layer, metric, value, variant, seconds, details in out.rows],
                    key=["job_id", "backbone_id", "layer", "metric"])
    return {"backbone": backbone_id, "scores": len(out.rows), "computed": len(out.fresh)}


def difficulty_value(features: np.ndarray, labels: np.ndarray) -> Any:
    """The target's difficulty in ``features`` (the registry's structured difficulty result)."""
    from app.transferability import task_difficulty

    return task_difficulty(features, labels)


def _difficulty(runtime: Runtime, inputs: RankingInputs, keys: ScoreKeys, backbone_id: str, last: str,
                out: _Results, spec: Any) -> None:
    """The target's difficulty in the last layer's features (classification), one row per field."""
    plan = inputs.plan
    if not plan.classification or (last, DIFFICULTY_PREFIX + DIFFICULTY_FIELDS[0]) in out.values:
        return
    cache_key = score_cache_key(inputs=[keys.embedding(backbone_id, last)], rows=keys.rows,
                                task_type=plan.task_type, metric=spec.name, variant=spec.variant,
                                version=spec.version, params={})
    with runtime.sessions() as session:
        hit = SqlScoreCache(session).lookup([cache_key]).get(cache_key)
    if hit is not None:
        fields, seconds, details = hit.details["fields"], 0.0, {"cached": True, "computed_seconds": hit.seconds}
    else:
        started = time.perf_counter()
        try:
            difficulty = difficulty_value(inputs.scored(backbone_id, last), inputs.labels)
        except ValueError as exc:
            log.warning("difficulty of %s failed: %s", backbone_id, exc)
            return
        seconds = time.perf_counter() - started
        fields = {f: float(getattr(difficulty, f)) for f in DIFFICULTY_FIELDS}
        if all(np.isfinite(v) for v in fields.values()):  # JSON (and so the cache) holds finite numbers only
            out.fresh.append({"cache_key": cache_key, "metric": spec.name, "version": spec.version,
                              "variant": spec.variant, "value": None, "seconds": seconds,
                              "details": {"fields": fields}})
        details = {"cached": False}
    for i, name in enumerate(DIFFICULTY_FIELDS):
        # the whole computation's cost is on the first field's row, so a job's seconds sum to its cost
        out.rows.append((last, DIFFICULTY_PREFIX + name, fields[name], spec.variant, seconds if i == 0 else 0.0,
                         details))
        out.values[(last, DIFFICULTY_PREFIX + name)] = fields[name]
