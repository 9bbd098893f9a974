"""The ranking job: embed → score → rank → subset → probe → verdict.

Embedding, scoring and probing are split into units (``app.services.ranking_units``) that the executor's
unit runner runs — in this thread locally, in parallel on Ray. Ranking, subset selection and the verdict
are cheap and run here. Every stage reports progress and persists what it produces, and every write is an
upsert, so a job re-queued after its worker died resumes without duplicate rows.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sqlalchemy import select

from app.db.session import unit_of_work
from app.db.tables import Job, MetricScore, Ranking
from app.db.upsert import upsert
from app.execution.tasks import JobContext
from app.ranking import aggregate, bootstrap_rank_intervals, choose_layers, greedy_subset, rank_with_ties
from app.services import ranking_inputs as inputs
from app.services.ranking_plan import (
    BOOTSTRAP_METRICS,
    DIFFICULTY_PREFIX,
    SIMILARITY_PREFIX,
    Plan,
    load_plan,
    scoring_rows,
)
from app.services.ranking_verdicts import share_scratch_runs, verdict_stage

log = logging.getLogger("tscout.ranking")
UNITS = "app.services.ranking_units"


def _stage(ctx: JobContext, name: str, unit: str, args: list[tuple], resources: dict[str, float] | None = None):
    ctx.progress(name, 0, len(args))
    return ctx.units.map(f"{UNITS}:{unit}", args, on_done=lambda d: ctx.progress(name, d, len(args)),
                         check_cancelled=ctx.check_cancelled, resources=resources)


def _update_result(ctx: JobContext, **values: Any) -> None:
    with unit_of_work(ctx.runtime.sessions) as session:
        job = session.get(Job, ctx.job_id, populate_existing=True)
        job.result = {**(job.result or {}), **values}


def run_ranking_job(ctx: JobContext) -> None:
    with ctx.runtime.sessions() as session:
        plan = load_plan(session, ctx.job_id)
    gpu = {"gpu": 1.0}
    _stage(ctx, "embed", "embed_unit", [(plan.job_id, b) for b in plan.backbones], resources=gpu)
    ctx.check_cancelled()
    _stage(ctx, "score", "score_unit", [(plan.job_id, b) for b in plan.backbones])
    ctx.check_cancelled()
    table = rank_stage(ctx, plan)
    ctx.check_cancelled()
    if plan.subset_size >= 2 and len(table) >= 2:
        subset_stage(ctx, plan, table)
    if plan.probe is not None:
        candidates = probe_candidates(plan, table)
        best_layers = {r["backbone_id"]: r["best_layer"] for r in table}
        units = inputs.probe_units(ctx.runtime, plan, candidates, best_layers)
        _stage(ctx, "probe", "probe_unit", units, resources=gpu)
        share_scratch_runs(ctx.runtime, plan, candidates, best_layers)
        ctx.check_cancelled()
        ctx.progress("verdict", 0, len(candidates))
        verdict_stage(ctx.runtime, plan, candidates)
        ctx.progress("verdict", len(candidates), len(candidates))


def _scores_by_backbone(ctx: JobContext, plan: Plan) -> dict[str, dict[str, dict[str, float]]]:
    """{backbone: {layer: {metric: value}}} from the stored metric rows."""
    out: dict[str, dict[str, dict[str, float]]] = {b: {} for b in plan.backbones}
    with ctx.runtime.sessions() as session:
        for row in session.scalars(select(MetricScore).where(MetricScore.job_id == plan.job_id)):
            value = float("nan") if row.value is None else row.value
            out.setdefault(row.backbone_id, {}).setdefault(row.layer, {})[row.metric] = value
    return out


def rank_stage(ctx: JobContext, plan: Plan) -> list[dict[str, Any]]:
    """Best layer per backbone, aggregate across backbones, bootstrap rank intervals, baselines, flags."""
    from app.transferability import METRICS

    ctx.progress("rank", 0, 1)
    stored = inputs.stored_dataset(ctx.runtime, plan)
    raw = _scores_by_backbone(ctx, plan)
    directions = plan.directions
    metrics = list(plan.metrics)
    head_metrics = {m for m in metrics if METRICS[m].inputs[0] == "source_probs"}
    chosen: dict[str, tuple[str, dict[str, float], dict[str, float]]] = {}
    extras: dict[str, dict[str, Any]] = {}
    for backbone in plan.backbones:
        # head metrics (LEEP, NCE) read the source head, not a layer: they do not choose the cut and
        # join the chosen layer's values whatever the cut is
        head = {m: v for vals in raw.get(backbone, {}).values() for m, v in vals.items() if m in head_metrics}
        per_layer = {layer: {m: v for m, v in vals.items() if m in directions and m not in head_metrics}
                     for layer, vals in raw.get(backbone, {}).items()}
        per_layer = {layer: vals for layer, vals in per_layer.items() if vals}
        if not per_layer:
            raise RuntimeError(f"no metric could be computed for backbone {backbone}")
        order = inputs.job_layers(ctx.runtime, plan, backbone)
        layer, values, per_layer_score = choose_layers(per_layer, directions, mode=plan.layer_mode,
                                                       layer_order=order)
        chosen[backbone] = (layer, {**values, **head}, per_layer_score)
        depths = inputs.layer_depths(ctx.runtime, plan, backbone)
        layer_view = {ly: {"aggregate": chosen[backbone][2].get(ly), "depth": depths.get(ly),
                           "scores": per_layer.get(ly, {})} for ly in order if ly in per_layer}
        best_layer = chosen[backbone][0]
        look = order[-1] if best_layer == "mean" else best_layer
        similarity = {k[len(SIMILARITY_PREFIX):]: v for k, v in raw[backbone].get(look, {}).items()
                      if k.startswith(SIMILARITY_PREFIX)}
        difficulty = {k[len(DIFFICULTY_PREFIX):]: v for layer_vals in raw[backbone].values()
                      for k, v in layer_vals.items() if k.startswith(DIFFICULTY_PREFIX)}
        extras[backbone] = {"layers": layer_view, "similarity": similarity, "difficulty": difficulty}
    names = list(plan.backbones)
    # a metric that is missing for some backbone (e.g. LEEP without a source head) is left out of the
    # aggregate for everyone, so every candidate is judged on the same evidence
    usable = [m for m in metrics if all(np.isfinite(chosen[b][1].get(m, np.nan)) for b in names)]
    warnings_list = [f"metric {m} left out of the aggregate: not available for every backbone"
                     for m in metrics if m not in usable]
    if not usable:
        raise RuntimeError("no metric is available for every backbone; nothing to aggregate")
    columns = {m: [chosen[b][1][m] for b in names] for m in usable}
    for m, col in columns.items():
        if len(names) > 1 and np.ptp(col) <= 1e-12 * max(1.0, np.max(np.abs(col))):
            warnings_list.append(f"metric {m} gives every backbone the same value ({col[0]:.4g}): "
                                 "non-discriminative on this target")
    weights = plan.aggregation if isinstance(plan.aggregation, dict) else None
    method = "weighted" if weights else "rank_mean"
    result = aggregate(columns, {m: directions[m] for m in usable}, method=method,
                       weights={m: w for m, w in (weights or {}).items() if m in usable} or None)
    intervals = {}
    boot_metrics = [m for m in usable if m in BOOTSTRAP_METRICS]
    if plan.bootstrap >= 2 and len(names) >= 2 and boot_metrics:
        intervals = _bootstrap(ctx, plan, stored, names, chosen, boot_metrics, weights, method)
    baselines = inputs.baselines(ctx.runtime, plan, names, seed=plan.seed)
    flags = _flags(names, result.rank, extras)
    table = []
    with unit_of_work(ctx.runtime.sessions) as session:
        for i, backbone in enumerate(names):
            layer, values, _ = chosen[backbone]
            scores = {m: {"raw": values.get(m), "normalised": _f(result.normalised[m][i]) if m in result.normalised
                          else None, "in_aggregate": m in usable} for m in metrics}
            low, high, p_top = intervals.get(backbone, (None, None, None))
            details = {**extras[backbone], "baselines": baselines.get(backbone, {}), "flags": flags[backbone],
                       "p_top1": p_top}
            rank = int(np.floor(result.rank[i]))
            upsert(session, Ranking, {"job_id": plan.job_id, "backbone_id": backbone},
                   {"best_layer": layer, "rank": rank, "rank_ci_low": low, "rank_ci_high": high,
                    "aggregate": float(result.score[i]), "scores": scores, "details": details})
            table.append({"backbone_id": backbone, "best_layer": layer, "rank": rank,
                          "aggregate": float(result.score[i]), "flags": flags[backbone]})
    target_difficulty = inputs.target_difficulty(ctx.runtime, plan, stored)
    _update_result(ctx, warnings=warnings_list, metrics_in_aggregate=usable, aggregation=method,
                   target_difficulty=target_difficulty)
    ctx.progress("rank", 1, 1)
    return sorted(table, key=lambda r: (r["rank"], r["backbone_id"]))


def _f(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _bootstrap(ctx, plan, stored, names, chosen, boot_metrics, weights, method):
    from app.transferability import score

    train = stored.split("train")
    labels_all = stored.labels[train]
    rows = scoring_rows(labels_all, plan.max_samples, plan.seed)
    labels = labels_all[rows]
    feats = {}
    probs = {}
    for b in names:
        layer = chosen[b][0]
        layers = inputs.job_layers(ctx.runtime, plan, b)
        use = layers if layer == "mean" else [layer]
        emb = inputs.train_embeddings(ctx.runtime, plan, b, use)
        feats[b] = {ly: np.asarray(emb[ly])[rows] for ly in use}
        if {"leep", "nce"} & set(boot_metrics):
            probs[b] = inputs.train_source_probs(ctx.runtime, plan, b)
    classification = plan.task_type == "classification"

    def metric_fn(b: str, m: str, idx: np.ndarray) -> float:
        target = {"labels": labels[idx]} if classification else {"targets": labels[idx].astype(np.float64)}
        try:
            if m in ("leep", "nce"):
                return score(m, task_type=plan.task_type, source_probs=probs[b][rows][idx], **target)
            vals = [score(m, task_type=plan.task_type, features=f[idx], **target) for f in feats[b].values()]
            return float(np.mean(vals))
        except ValueError:
            return float("nan")

    directions = plan.directions
    return bootstrap_rank_intervals(
        names, metric_fn, boot_metrics, {m: directions[m] for m in boot_metrics}, n_samples=len(rows),
        labels=labels if classification else None, n_boot=plan.bootstrap, random_state=plan.seed,
        method=method, weights={m: w for m, w in (weights or {}).items() if m in boot_metrics} or None,
        should_stop=ctx.cancelled)


def _flags(names: list[str], ranks: np.ndarray, extras: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """'low_score': in the bottom third; 'far_domain': the farthest third by Fréchet distance to its source."""
    flags: dict[str, list[str]] = {b: [] for b in names}
    n = len(names)
    if n >= 3:
        for b, r in zip(names, ranks, strict=True):
            if r > n - max(1, n // 3):
                flags[b].append("low_score")
    dist = {b: extras[b]["similarity"].get("frechet_distance") for b in names}
    known = {b: d for b, d in dist.items() if d is not None and np.isfinite(d)}
    if len(known) >= 3:
        order = rank_with_ties([-d for d in known.values()])  # rank 1 = closest
        for (b, _), r in zip(known.items(), order, strict=True):
            if r > len(known) - max(1, len(known) // 3):
                flags[b].append("far_domain")
    return flags


def subset_stage(ctx: JobContext, plan: Plan, table: list[dict[str, Any]]) -> None:
    """Greedy multi-source subset over the best layers, scored with LogME (or the first metric that
    takes features)."""
    from app.transferability import METRICS, score

    ctx.progress("subset", 0, 1)
    metric = "logme" if "logme" in plan.metrics else next(
        (m for m in plan.metrics if METRICS[m].inputs[0] == "features"), None)
    if metric is None:
        return
    stored = inputs.stored_dataset(ctx.runtime, plan)
    labels_all = stored.labels[stored.split("train")]
    rows = scoring_rows(labels_all, plan.max_samples, plan.seed)
    labels = labels_all[rows]
    target = {"labels": labels} if plan.task_type == "classification" else {"targets": labels.astype(np.float64)}
    features = {}
    for row in table:
        b = row["backbone_id"]
        layer = row["best_layer"] if row["best_layer"] != "mean" else inputs.job_layers(ctx.runtime, plan, b)[-1]
        features[b] = np.asarray(inputs.train_embeddings(ctx.runtime, plan, b, [layer])[layer])[rows]

    def score_fn(x: np.ndarray) -> float:
        try:
            return score(metric, task_type=plan.task_type, features=x, **target)
        except ValueError:
            return float("nan")

    steps = greedy_subset(features, score_fn, max_size=plan.subset_size)
    _update_result(ctx, subset={"metric": metric, "steps": [
        {"backbone_id": s.backbone, "score": _f(s.score), "gain": _f(s.gain)} for s in steps]})
    ctx.progress("subset", 1, 1)


def probe_candidates(plan: Plan, table: list[dict[str, Any]]) -> list[str]:
    """The top-k by rank, plus up to ``max_suspicious`` sources flagged as suspicious (far domain or low
    score), the lowest-ranked first: those are where negative transfer hides."""
    if plan.probe is None:
        return []
    chosen = [r["backbone_id"] for r in table[: plan.probe.top_k]]
    if plan.probe.include_suspicious:
        flagged = [r["backbone_id"] for r in reversed(table) if r["flags"] and r["backbone_id"] not in chosen]
        chosen += flagged[: plan.probe.max_suspicious]
    return chosen
