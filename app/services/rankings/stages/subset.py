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
    ctx.record(subset={"metric": metric, "steps": [
        {"backbone_id": s.backbone, "score": finite(s.score), "gain": finite(s.gain)} for s in steps]})
    ctx.progress("subset", 1, 1)

