"""Stage 4, subset: a greedy multi-source subset over the backbones' chosen layers — which sources, taken
together (features concatenated), score best — scored with the metric the registry prefers for it."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.jobs.context import JobContext
from app.ranking import greedy_subset
from app.services.rankings.inputs import RankingInputs
from app.services.rankings.stages.rank import finite


def subset_stage(ctx: JobContext, inputs: RankingInputs, table: list[dict[str, Any]]) -> None:
    from app.transferability import score, subset_metric

    plan = inputs.plan
    metric = subset_metric(plan.metrics)
    if metric is None:
        return
    ctx.progress("subset", 0, 1)
    target = inputs.target()
    features = {row["backbone_id"]: inputs.scored(row["backbone_id"],
                                                  inputs.resolve_layer(row["backbone_id"], row["best_layer"]))
                for row in table}

    def score_fn(x: np.ndarray) -> float:
        try:
            return score(metric, task_type=plan.task_type, features=x, **target)
        except ValueError:
            return float("nan")

    steps = greedy_subset(features, score_fn, max_size=plan.subset_size)
    ctx.record(subset={"metric": metric, "explanation": explain(metric, steps, plan.subset_size, len(features)),
                       "steps": [{"backbone_id": s.backbone, "score": finite(s.score), "gain": finite(s.gain),
                                  "why": _why(metric, i, s)} for i, s in enumerate(steps)]})
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
