"""Stage 3, rank: the best layer per backbone, the aggregate across backbones, bootstrap rank intervals,
trivial baselines and flags — one ``rankings`` row per backbone, and the job's warnings.

Head metrics (LEEP, NCE) read the source head, not a layer: they do not choose the cut and join the
chosen layer's values whatever the cut is. A metric missing for some backbone is left out of the aggregate
for everyone, so every candidate is judged on the same evidence.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select

from app.db.session import unit_of_work
from app.db.tables import MetricScore, Ranking
from app.db.upsert import upsert
from app.jobs.context import JobContext
from app.ranking import aggregate, choose_layers, rank_with_ties
from app.services.rankings.inputs import RankingInputs
from app.services.rankings.plan import DIFFICULTY_PREFIX, SIMILARITY_PREFIX
from app.services.rankings.stages.baselines import target_difficulty, trivial_baselines
from app.services.rankings.stages.intervals import rank_intervals

Scores = dict[str, dict[str, dict[str, float]]]  # backbone → layer → metric → value


def stored_scores(ctx: JobContext, inputs: RankingInputs) -> Scores:
    """{backbone: {layer: {metric: value}}} from the job's metric rows (NaN where a metric failed)."""
    out: Scores = {b: {} for b in inputs.plan.backbones}
    with ctx.runtime.sessions() as session:
        for row in session.scalars(select(MetricScore).where(MetricScore.job_id == inputs.plan.job_id)):
            value = float("nan") if row.value is None else row.value
            out.setdefault(row.backbone_id, {}).setdefault(row.layer, {})[row.metric] = value
    return out


def _choose(inputs: RankingInputs, backbone: str, raw: Scores) -> tuple[str, dict[str, float], dict[str, Any]]:
    """(chosen layer, metric values there, the row's extras: per-layer view, similarity, difficulty)."""
    from app.transferability import METRICS

    plan = inputs.plan
    directions = plan.directions
    head_metrics = {m for m in plan.metrics if METRICS[m].needs_source_head}
    layers_raw = raw.get(backbone, {})
    head = {m: v for vals in layers_raw.values() for m, v in vals.items() if m in head_metrics}
    per_layer = {layer: {m: v for m, v in vals.items() if m in directions and m not in head_metrics}
                 for layer, vals in layers_raw.items()}
    per_layer = {layer: vals for layer, vals in per_layer.items() if vals}
    if not per_layer:
        raise RuntimeError(f"no metric could be computed for backbone {backbone}")
    order = inputs.layers(backbone)
    layer, values, per_layer_score = choose_layers(per_layer, directions, mode=plan.layer_mode, layer_order=order)
    depths = inputs.depths(backbone)
    view = {ly: {"aggregate": per_layer_score.get(ly), "depth": depths.get(ly), "scores": per_layer.get(ly, {})}
            for ly in order if ly in per_layer}
    look = order[-1] if layer == "mean" else layer
    similarity = {k[len(SIMILARITY_PREFIX):]: v for k, v in layers_raw.get(look, {}).items()
                  if k.startswith(SIMILARITY_PREFIX)}
    difficulty = {k[len(DIFFICULTY_PREFIX):]: v for vals in layers_raw.values() for k, v in vals.items()
                  if k.startswith(DIFFICULTY_PREFIX)}
    return layer, {**values, **head}, {"layers": view, "similarity": similarity, "difficulty": difficulty}


def rank_stage(ctx: JobContext, inputs: RankingInputs) -> list[dict[str, Any]]:
    """Rank the job's backbones; returns the table (best first) that the subset and probe stages read."""
    from app.transferability import METRICS

    plan = inputs.plan
    ctx.progress("rank", 0, 1)
    raw = stored_scores(ctx, inputs)
    names = list(plan.backbones)
    chosen = {b: _choose(inputs, b, raw) for b in names}
    metrics = list(plan.metrics)
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
    directions = plan.directions
    weights = plan.aggregation if isinstance(plan.aggregation, dict) else None
    method = "weighted" if weights else "rank_mean"
    result = aggregate(columns, {m: directions[m] for m in usable}, method=method,
                       weights={m: w for m, w in (weights or {}).items() if m in usable} or None)
    intervals: dict[str, tuple[Any, Any, Any]] = {}
    boot_metrics = [m for m in usable if METRICS[m].bootstrap]
    if plan.bootstrap >= 2 and len(names) >= 2 and boot_metrics:
        intervals = rank_intervals(inputs, names, {b: chosen[b][0] for b in names}, boot_metrics, weights,
                                   method, should_stop=ctx.cancelled,
                                   point_ranks={b: float(np.floor(result.rank[i])) for i, b in enumerate(names)})
    baselines = trivial_baselines(inputs, names)
    flags = _flags(names, result.rank, {b: chosen[b][2] for b in names})
    table = []
    with unit_of_work(ctx.runtime.sessions) as session:
        for i, backbone in enumerate(names):
            layer, values, extras = chosen[backbone]
            scores = {m: {"raw": values.get(m), "normalised": finite(result.normalised[m][i])
                          if m in result.normalised else None, "in_aggregate": m in usable} for m in metrics}
            low, high, p_top = intervals.get(backbone, (None, None, None))
            details = {**extras, "baselines": baselines.get(backbone, {}), "flags": flags[backbone], "p_top1": p_top}
            rank = int(np.floor(result.rank[i]))
            upsert(session, Ranking, {"job_id": plan.job_id, "backbone_id": backbone},
                   {"best_layer": layer, "rank": rank, "rank_ci_low": low, "rank_ci_high": high,
                    "aggregate": float(result.score[i]), "scores": scores, "details": details})
            table.append({"backbone_id": backbone, "best_layer": layer, "rank": rank,
                          "aggregate": float(result.score[i]), "flags": flags[backbone]})
    ctx.record(warnings=warnings_list, metrics_in_aggregate=usable, aggregation=method,
               target_difficulty=target_difficulty(inputs))
    ctx.progress("rank", 1, 1)
    return sorted(table, key=lambda r: (r["rank"], r["backbone_id"]))


def finite(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _flags(names: list[str], ranks: np.ndarray, extras: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """'low_score': in the bottom third; 'far_domain': the farthest third by Fréchet distance to its source."""
    flags: dict[str, list[str]] = {b: [] for b in names}
    n = len(names)
    if n >= 3:
        for b, r in zip(names, ranks, strict=True):
            if r > n - max(1, n // 3):
                flags[b].append("low_score")
    from app.transferability import far_domain_metric

    dist = {b: extras[b]["similarity"].get(far_domain_metric()) for b in names}
    known = {b: d for b, d in dist.items() if d is not None and np.isfinite(d)}
    if len(known) >= 3:
        order = rank_with_ties([-d for d in known.values()])  # rank 1 = closest
        for (b, _), r in zip(known.items(), order, strict=True):
            if r > len(known) - max(1, len(known) // 3):
                flags[b].append("far_domain")
    return flags
