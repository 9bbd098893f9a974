"""Stage 4, subset: a greedy multi-source subset over the backbones' chosen layers — which sources, taken
together (features concatenated), score best — scored with the metric the registry prefers for it.

The result goes through the score cache like a metric value, keyed by the candidates' embeddings at their
chosen layers (in the table's order, which breaks ties), the scored rows, the metric and its version, the
size limit and :data:`SUBSET_VERSION`: a repeated job reads it back and loads no feature."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from app.db.score_cache import SqlScoreCache, score_cache_key
from app.db.session import unit_of_work
from app.jobs.context import JobContext
from app.ranking import greedy_subset
from app.services.rankings.inputs import RankingInputs
from app.services.rankings.score_keys import ScoreKeys
from app.services.rankings.stages.rank import finite

#: bump when the greedy selection or its standardisation changes what a subset is
SUBSET_VERSION = "1"


def subset_stage(ctx: JobContext, inputs: RankingInputs, table: list[dict[str, Any]]) -> None:
    from app.transferability import METRICS, score, subset_metric

    plan = inputs.plan
    metric = subset_metric(plan.metrics)
    if metric is None:
        return
    ctx.progress("subset", 0, 1)
    layers = {row["backbone_id"]: inputs.resolve_layer(row["backbone_id"], row["best_layer"]) for row in table}
    spec = METRICS[metric]
    variant = f"greedy_subset:{spec.variant}"
    keys = ScoreKeys(inputs)
    try:
        cache_key = score_cache_key(inputs=[keys.embedding(b, ly) for b, ly in layers.items()], rows=keys.rows,
                                    task_type=plan.task_type, metric=metric, variant=variant,
                                    version=f"{spec.version}.{SUBSET_VERSION}",
                                    params={"max_size": plan.subset_size})
    except ValueError:  # a backbone without a weights digest: its embeddings have no stable key
        cache_key = None
    if cache_key is not None:
        with inputs.runtime.sessions() as session:
            hit = SqlScoreCache(session).lookup([cache_key]).get(cache_key)
        if hit is not None:
            ctx.record(subset={**hit.details["subset"], "cached": True})
            ctx.progress("subset", 1, 1)
            return
    started = time.perf_counter()
    target = inputs.target()
    features = {b: inputs.scored(b, ly) for b, ly in layers.items()}

    def score_fn(x: np.ndarray) -> float:
        try:
            return score(metric, task_type=plan.task_type, features=x, **target)
        except ValueError:
            return float("nan")

    steps = greedy_subset(features, score_fn, max_size=plan.subset_size)
    subset = {"metric": metric, "explanation": explain(metric, steps, plan.subset_size, len(features)),
              "steps": [{"backbone_id": s.backbone, "score": finite(s.score), "gain": finite(s.gain),
                         "why": _why(metric, i, s)} for i, s in enumerate(steps)]}
    if cache_key is not None:
        with unit_of_work(inputs.runtime.sessions) as session:
            SqlScoreCache(session).record([{"cache_key": cache_key, "metric": metric, "version": spec.version,
                                            "variant": variant, "value": None,
                                            "seconds": time.perf_counter() - started,
                                            "details": {"subset": subset}}])
    ctx.record(subset={**subset, "cached": False})
    ctx.progress("subset", 1, 1)



def _why(metric: str, i: int, step: Any) -> str:
    if i == 0:
        return (f"the best single source: {metric} {step.score:.4g} on its standardised features (each feature "
                "centred and scaled before concatenation, so it can differ from the table's value on raw features); "
                "no gain: there is nothing before it to improve on")
    return f"added: {metric} of the subset {step.score:.4g}, a gain of {step.gain:+.4g} over the subset before it"


def explain(metric: str, steps: list[Any], max_size: int, n_candidates: int) -> str:
    """One sentence on how the subset was built and why it stopped where it did."""
    head = (f"Greedy forward selection: each step adds the source whose standardised features, concatenated to "
            f"those chosen, give the highest {metric}; ")
    if len(steps) >= min(max_size, n_candidates):
        return head + f"stopped at the size limit ({min(max_size, n_candidates)})."
    return head + f"stopped after {len(steps)}: no further source raised {metric}."
