"""The ranking job's handler: the order of its stages, and nothing else.

embed → score → rank → subset → probe (in rounds of paired seeds) → verdict. Embed, score and probe run as
units through the executor's unit runner (in this thread locally, in parallel on Ray); the other stages run here on one
:class:`RankingInputs`, so the plan and embeddings are loaded once for all of them. Every stage reports
progress and persists what it produces with upserts, so a job re-queued after its worker died resumes
without duplicate rows.
"""

from __future__ import annotations

from app.jobs.context import JobContext
from app.services.rankings.inputs import RankingInputs
from app.services.rankings.stages.embed import embed_unit
from app.services.rankings.stages.probe import probe_candidates, probe_stage
from app.services.rankings.stages.rank import rank_stage
from app.services.rankings.stages.score import score_unit
from app.services.rankings.stages.subset import subset_stage
from app.services.rankings.stages.verdict import verdict_stage

GPU = {"gpu": 1.0}


def run_ranking_job(ctx: JobContext) -> None:
    inputs = RankingInputs.load(ctx.runtime, ctx.job_id)
    plan = inputs.plan
    ctx.stage("embed", embed_unit, [(plan.job_id, b) for b in plan.backbones], resources=GPU)
    ctx.check_cancelled()
    ctx.stage("score", score_unit, [(plan.job_id, b) for b in plan.backbones])
    ctx.check_cancelled()
    table = rank_stage(ctx, inputs)
    ctx.check_cancelled()
    if plan.subset_size >= 2 and len(table) >= 2:
        subset_stage(ctx, inputs, table)
    if plan.probe is None:
        return
    candidates = probe_candidates(plan, table)
    best_layers = {r["backbone_id"]: r["best_layer"] for r in table}
    stopped, rounds = probe_stage(ctx, inputs, candidates, best_layers)
    ctx.check_cancelled()
    ctx.progress("verdict", 0, len(candidates))
    verdict_stage(ctx, inputs, candidates, stopped, rounds)
    ctx.progress("verdict", len(candidates), len(candidates))
