"""Stage 3, rank: the best layer per backbone, the aggregate across backbones, bootstrap rank intervals,
trivial baselines and flags — one ``rankings`` row per backbone, and the job's warnings.

Head metrics (LEEP, NCE) read the source head, not a layer: they do not choose the cut and join the
chosen layer's values whatever the cut is. A metric missing for some backbone is left out of the aggregate
for everyone, so every candidate is judged on the same evidence.

The aggregation is the one frozen in the request (``plan.resolved_aggregation``): by default the fitted
default ranking (``app.ranking.fit``; its family, weights and layer rule, named in the result as
``ranker``), else the rank mean or the user's weights. A default-ranking metric that is missing for some
backbone leaves the aggregate with a warning, and the others' weights are renormalised. The fitted rules
``best`` / ``best_deep`` choose each backbone's layer from one pool of every (backbone, layer) pair, as they
were fitted (``layer_mode="fitted"``).
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
from app.services.rankings.stages.intervals import (
    backbones_missing_replicates,
    bootstrap_unit,
    rank_intervals,
)

Scores = dict[str, dict[str, dict[str, float]]]  # backbone → layer → metric → value


def stored_scores(ctx: JobContext, inputs: RankingInputs) -> Scores:
    """{backbone: {layer: {metric: value}}} from the job's metric rows (NaN where a metric failed)."""
    out: Scores = {b: {} for b in inputs.plan.backbones}
    with ctx.runtime.sessions() as session:
        for row in session.scalars(select(MetricScore).where(MetricScore.job_id == inputs.plan.job_id)):
            value = float("nan") if row.value is None else row.value
            out.setdefault(row.backbone_id, {}).setdefault(row.layer, {})[row.metric] = value
    return out


def _layer_values(inputs: RankingInputs, backbone: str, raw: Scores) -> dict[str, dict[str, float]]:
    """{layer: {metric: value}} of one backbone's layer metrics (head metrics and other fields left out)."""
    from app.transferability import METRICS

    plan = inputs.plan
    head_metrics = {m for m in plan.metrics if METRICS[m].head_only}
    per_layer = {layer: {m: v for m, v in vals.items() if m in plan.directions and m not in head_metrics}
                 for layer, vals in raw.get(backbone, {}).items()}
    return {layer: vals for layer, vals in per_layer.items() if vals}


def fitted_layers(inputs: RankingInputs, raw: Scores, weights: dict[str, float]) -> dict[str, str]:
    """{backbone: layer} by the fitted default's layer rule over one pool of every (backbone, layer)."""
    from app.ranking import fit

    plan = inputs.plan
    agg = plan.resolved_aggregation
    rule = agg.get("layer_rule") or "last"
    combination = (agg.get("ranker") or {}).get("combination", "rank")
    pool, taps = {}, {}
    for b in plan.backbones:
        per_layer = _layer_values(inputs, b, raw)
        order = [ly for ly in inputs.layers(b) if ly in per_layer]
        if not order:
            raise RuntimeError(f"no metric could be computed for backbone {b}")
        taps[b] = order
        pool.update({(b, ly): per_layer[ly] for ly in order})
    w = {m: v for m, v in weights.items() if m in plan.directions}
    layer_weights = {m: v for m, v in w.items() if any(m in vals for vals in pool.values())}
    if not layer_weights:  # only head metrics are weighted: the layer cannot change the score
        return {b: taps[b][-1] for b in plan.backbones}
    chosen = fit.choose_layers(pool, taps, layer_weights, plan.directions, rule, combination)
    return {b: ly for b, (ly, _) in chosen.items()}


def _choose(inputs: RankingInputs, backbone: str, raw: Scores,
            fixed_layer: str | None = None) -> tuple[str, dict[str, float], dict[str, Any]]:
    """(chosen layer, metric values there, the row's extras: per-layer view, similarity, difficulty).
    ``fixed_layer``: the layer chosen beforehand (the fitted default's pooled rule)."""
    from app.transferability import METRICS

    plan = inputs.plan
    directions = plan.directions
    head_metrics = {m for m in plan.metrics if METRICS[m].head_only}
    layers_raw = raw.get(backbone, {})
    head = {m: v for vals in layers_raw.values() for m, v in vals.items() if m in head_metrics}
    per_layer = _layer_values(inputs, backbone, raw)
    if not per_layer:
        raise RuntimeError(f"no metric could be computed for backbone {backbone}")
    order = inputs.layers(backbone)
    mode = "last" if fixed_layer is not None else plan.layer_mode
    layer, values, per_layer_score = choose_layers(per_layer, directions, mode=mode, layer_order=order)
    if fixed_layer is not None:
        layer, values = fixed_layer, dict(per_layer[fixed_layer])
    depths = inputs.depths(backbone)
    view = {ly: {"aggregate": per_layer_score.get(ly), "depth": depths.get(ly), "scores": per_layer.get(ly, {})}
            for ly in order if ly in per_layer}
    look = order[-1] if layer == "mean" or plan.layer_mode == "fitted" else layer  # where score read similarity
    similarity = {k[len(SIMILARITY_PREFIX):]: v for k, v in layers_raw.get(look, {}).items()
                  if k.startswith(SIMILARITY_PREFIX)}
    difficulty = {k[len(DIFFICULTY_PREFIX):]: v for vals in layers_raw.values() for k, v in vals.items()
                  if k.startswith(DIFFICULTY_PREFIX)}
    return layer, {**values, **head}, {"layers": view, "similarity": similarity, "similarity_layer": look,
                                       "difficulty": difficulty}


#: a backbone's features are degenerate when their spread (RMS of the centred target features) is below this
#: fraction of the median spread of the job's backbones, or (any job size) of their own magnitude
DEGENERATE_RELATIVE = 1e-2
DEGENERATE_OWN = 1e-6


def degenerate_backbones(inputs: RankingInputs, layers: dict[str, str]) -> dict[str, str]:
    """``{backbone: why}`` for backbones whose features at ``layers[b]`` carry almost no signal: nearly
    constant (spread ≤ 1e-6 of their magnitude), or a spread far below the others' (a random-init trunk
    whose activations are tiny). Distances computed on such features are small because the features are,
    not because the domains are close."""
    spread, own = {}, {}
    for b, layer in layers.items():
        try:
            x = np.asarray(inputs.scored(b, inputs.resolve_layer(b, layer)), dtype=np.float64)
        except (KeyError, ValueError, FileNotFoundError):
            continue
        if x.ndim != 2 or len(x) < 2:
            continue
        spread[b] = float(np.sqrt(np.mean(x.var(axis=0))))
        own[b] = float(np.sqrt(np.mean(x ** 2)))
    out = {}
    typical = float(np.median(list(spread.values()))) if len(spread) >= 3 else None
    for b, sd in spread.items():
        if sd <= DEGENERATE_OWN * max(own[b], 1e-300):
            out[b] = f"its features are constant across the target's samples (spread {sd:.3g})"
        elif typical is not None and typical > 0 and sd < DEGENERATE_RELATIVE * typical:
            out[b] = (f"its features barely vary (spread {sd:.3g}, {sd / typical:.2g}× the median of this job's "
                      f"backbones, {typical:.3g})")
    return out


def rank_stage(ctx: JobContext, inputs: RankingInputs) -> list[dict[str, Any]]:
    """Rank the job's backbones; returns the table (best first) that the subset and probe stages read."""
    from app.transferability import METRICS

    plan = inputs.plan
    ctx.progress("rank", 0, 1)
    raw = stored_scores(ctx, inputs)
    names = list(plan.backbones)
    agg = plan.resolved_aggregation
    method, weights = agg["method"], agg.get("weights")
    fixed = fitted_layers(inputs, raw, weights) if plan.layer_mode == "fitted" else {}
    chosen = {b: _choose(inputs, b, raw, fixed.get(b)) for b in names}
    warnings_list = pool_scores(plan, names, {b: chosen[b][1] for b in names})
    metrics = list(dict.fromkeys([*plan.metrics, *plan.pools]))  # every value shown
    requested = set(plan.requested_metrics or plan.metrics)  # what enters the aggregate
    usable = [m for m in metrics if m in requested and all(np.isfinite(chosen[b][1].get(m, np.nan)) for b in names)]
    warnings_list += [f"metric {m} left out of the aggregate: not available for every backbone"
                      for m in metrics if m in requested and m not in usable]
    if not usable:
        raise RuntimeError("no metric is available for every backbone; nothing to aggregate")
    if weights:
        kept = {m: w for m, w in weights.items() if m in usable and w > 0}
        if not kept:
            warnings_list.append(f"none of the weighted metrics {sorted(weights)} is available for every backbone: "
                                 "the rank mean of the available metrics instead")
            method, kept = "rank_mean", None
        elif len(kept) < len([w for w in weights.values() if w > 0]):
            total = sum(kept.values())
            kept = {m: w / total for m, w in kept.items()}
            warnings_list.append(f"aggregate weights renormalised over {sorted(kept)}")
        weights = kept
    columns = {m: [chosen[b][1][m] for b in names] for m in usable}
    for m, col in columns.items():
        if len(names) > 1 and np.ptp(col) <= 1e-12 * max(1.0, np.max(np.abs(col))):
            warnings_list.append(f"metric {m} gives every backbone the same value ({col[0]:.4g}): "
                                 "non-discriminative on this target")
    directions = plan.directions
    aggregated = [m for m in usable if not weights or m in weights]
    result = aggregate({m: columns[m] for m in aggregated}, {m: directions[m] for m in aggregated}, method=method,
                       weights=weights or None)
    intervals: dict[str, tuple[Any, Any, Any]] = {}
    boot_metrics = [m for m in aggregated if m in METRICS and METRICS[m].bootstrap]
    if plan.bootstrap >= 2 and len(names) >= 2 and boot_metrics:
        # each backbone's replicates the cache lacks as a unit (in parallel where the runner allows), into it;
        # the intervals then read them back as cache hits
        layers_chosen = {b: chosen[b][0] for b in names}
        todo = backbones_missing_replicates(inputs, names, layers_chosen, boot_metrics)
        ctx.stage("bootstrap", bootstrap_unit, [(plan.job_id, b, layers_chosen[b], boot_metrics) for b in todo],
                  shared_process=True)
        ctx.progress("rank", 0, 1)
        intervals = rank_intervals(inputs, names, layers_chosen, boot_metrics, weights,
                                   method, should_stop=ctx.cancelled,
                                   point_ranks={b: float(np.floor(result.rank[i])) for i, b in enumerate(names)})
    baselines = trivial_baselines(inputs, names)
    degenerate = degenerate_backbones(inputs, {b: chosen[b][2]["similarity_layer"] for b in names})
    for b, why in degenerate.items():
        extras = chosen[b][2]
        extras["similarity"] = {k: None for k in extras["similarity"]}
        extras["similarity_note"] = f"not reported: {why}; a distance on such features says nothing about domains"
        warnings_list.append(f"backbone {b}: degenerate features ({why}); its domain similarity is not reported "
                             "and it is never called close")
    flags = _flags(names, result.rank, {b: chosen[b][2] for b in names})
    for b in degenerate:
        flags[b].append("degenerate_features")
    table = []
    with unit_of_work(ctx.runtime.sessions) as session:
        for i, backbone in enumerate(names):
            layer, values, extras = chosen[backbone]
            scores = {m: {"raw": finite(values.get(m)), "normalised": finite(result.normalised[m][i])
                          if m in result.normalised else None, "in_aggregate": m in aggregated} for m in metrics}
            low, high, p_top = intervals.get(backbone, (None, None, None))
            details = {**extras, "baselines": baselines.get(backbone, {}), "flags": flags[backbone], "p_top1": p_top}
            rank = int(np.floor(result.rank[i]))
            upsert(session, Ranking, {"job_id": plan.job_id, "backbone_id": backbone},
                   {"best_layer": layer, "rank": rank, "rank_ci_low": low, "rank_ci_high": high,
                    "aggregate": float(result.score[i]), "scores": scores, "details": json_finite(details)})
            table.append({"backbone_id": backbone, "best_layer": layer, "rank": rank,
                          "aggregate": float(result.score[i]), "flags": flags[backbone]})
    ctx.record(warnings=warnings_list, metrics_in_aggregate=aggregated, aggregation=method,
               aggregate_weights=weights or None, ranker=agg.get("ranker") if method != "rank_mean" else None,
               aggregation_note=agg.get("note"),
               target_difficulty=target_difficulty(inputs))
    ctx.progress("rank", 1, 1)
    return sorted(table, key=lambda r: (r["rank"], r["backbone_id"]))


def pool_scores(plan: Any, names: list[str], values: dict[str, dict[str, float]]) -> list[str]:
    """Add each requested pool-level score (ETran, NCTI: :data:`~app.transferability.POOL_SCORES`) to
    ``values[backbone]``, combined over this job's backbones from their parts at the chosen layers; returns
    the warnings for those that cannot be combined (a part missing for some backbone, a pool of one)."""
    from app.transferability import POOL_SCORES

    out = []
    for name in plan.pools:
        spec = POOL_SCORES[name]
        parts = {b: {m: values[b].get(m, np.nan) for m in spec.parts} for b in names}
        missing = sorted({m for b in names for m, v in parts[b].items() if not np.isfinite(v)})
        why = (f"its part(s) {missing} are not available for every backbone" if missing
               else "it is defined over a pool of at least 2 backbones" if len(names) < 2 else None)
        combined = dict.fromkeys(names, np.nan)
        if why is None:
            try:
                combined = spec.combine(parts)
            except ValueError as exc:  # a part constant over the pool: its min–max normalisation is undefined
                why = str(exc)
        if why is not None:
            out.append(f"pool score {name} not computed: {why}")
        for b in names:
            values[b][name] = float(combined[b])
    return out


def json_finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (a metric that failed at some layer reads back as NaN) replaced by
    ``None``: JSON has no NaN, and PostgreSQL's JSON type refuses it."""
    if isinstance(obj, dict):
        return {k: json_finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return finite(float(obj))
    return obj


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
