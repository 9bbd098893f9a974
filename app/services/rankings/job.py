"""The ranking job's handler: the order of its stages, and nothing else.

embed → score → rank → subset → probe (in rounds of paired seeds) → verdict. Embed, score and probe run as
units through the executor's unit runner (in this thread locally, in parallel on Ray); the other stages run here on one
:class:`RankingInputs`, so the plan and embeddings are loaded once for all of them. Every stage reports
progress and persists what it produces with upserts, so a job re-queued after its worker died resumes
without duplicate rows.

A candidate whose embed or score unit fails (or that no metric could score) is set aside with its error
(:mod:`~app.services.rankings.stages.failures`); the others go on, and the job ends ``SUCCEEDED`` with a
warning per failed candidate. It fails only when every candidate did.
"""

from __future__ import annotations

from dataclasses import replace

from app.jobs import state
from app.jobs.context import JobContext
from app.services.rankings.inputs import RankingInputs
from app.services.rankings.stages import failures
from app.services.rankings.stages.probe import probe_candidates, probe_stage
from app.services.rankings.stages.rank import rank_stage, stored_scores
from app.services.rankings.stages.subset import subset_stage
from app.services.rankings.stages.verdict import verdict_stage

GPU = {"gpu": 1.0}


def run_ranking_job(ctx: JobContext) -> None:
    inputs = RankingInputs.load(ctx.runtime, ctx.job_id)
    plan = inputs.plan
    failed = failures.collect(ctx.stage("embed", failures.guarded_embed_unit,
                                        [(plan.job_id, b) for b in plan.backbones], resources=GPU))
    ctx.check_cancelled()
    alive = [b for b in plan.backbones if b not in failed]
    failures.check_survivors(alive, failed)
    failed |= failures.collect(ctx.stage("score", failures.guarded_score_unit, [(plan.job_id, b) for b in alive],
                                         shared_process=True))
    ctx.check_cancelled()
    alive = [b for b in alive if b not in failed]
    failures.check_survivors(alive, failed)
    failed |= failures.unrankable(stored_scores(ctx, inputs), alive, list(plan.metrics))
    alive = [b for b in alive if b not in failed]
    failures.check_survivors(alive, failed)
    if failed:
        inputs = RankingInputs(ctx.runtime, replace(plan, backbones=tuple(alive)))
        plan = inputs.plan
    ctx.record(failed_backbones=failed)
    table = rank_stage(ctx, inputs)
    if failed:
        _add_warnings(ctx, failures.warnings_for(failed))
    ctx.check_cancelled()
    if plan.subset_size >= 2 and len(table) >= 2:
        subset_stage(ctx, inputs, table)
    if plan.probe is None:
        return
    candidates = probe_candidates(plan, table)
    best_layers = {r["backbone_id"]: r["best_layer"] for r in table}
    outcome = probe_stage(ctx, inputs, candidates, best_layers)
    ctx.check_cancelled()
    ctx.progress("verdict", 0, len(candidates))
    verdict_stage(ctx, inputs, candidates, outcome)
    ctx.progress("verdict", len(candidates), len(candidates))


def _add_warnings(ctx: JobContext, extra: list[str]) -> None:
    with ctx.runtime.sessions() as session:
        current = list((state.get_job(session, ctx.job_id).result or {}).get("warnings", []))
    ctx.record(warnings=[*current, *extra])
