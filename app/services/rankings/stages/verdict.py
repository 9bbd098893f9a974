"""Stage 6, verdict: the paired fine-tune − scratch evidence of each probed candidate, judged by the
job's sequential design (anytime-valid confidence sequence + one fixed-n test, Holm across candidates) →
positive / no_benefit / negative_transfer / inconclusive, with the text a user reads and the record of what
was run: rounds, seeds, steps per arm, per-arm accuracies, learning rates, time-outs, the stop reason and
the learning curves (``details``).

A run that timed out before its step budget is never evidence without saying so: its seed is excluded
(named in the record), and the verdict's warnings — copied into the job's warnings — say it.
"""

from __future__ import annotations

from app.db.session import unit_of_work
from app.db.tables import VerdictRow
from app.db.upsert import upsert
from app.jobs.context import JobContext
from app.services.rankings.inputs import RankingInputs
from app.services.rankings.stages.probe import job_runs


def verdict_stage(ctx: JobContext, inputs: RankingInputs, candidates: list[str], stopped: dict[str, str],
                  rounds: dict[str, int]) -> None:
    from app.probes.record import verdict_records

    plan = inputs.plan
    assert plan.probe is not None
    records = verdict_records(job_runs(inputs, candidates), plan.probe.design(), rounds=rounds,
                              stopped={c: r for c, r in stopped.items() if c in candidates},
                              linear_evidence=plan.probe.linear_evidence)
    warnings: list[str] = []
    with unit_of_work(inputs.runtime.sessions) as session:
        for rec in records:
            upsert(session, VerdictRow, {"job_id": plan.job_id, "backbone_id": rec.backbone_id}, rec.row())
            warnings += [f"{rec.backbone_id}: {w}" for w in rec.warnings]
    if warnings:
        with inputs.runtime.sessions() as session:
            from app.jobs.state import get_job

            existing = list((get_job(session, plan.job_id).result or {}).get("warnings", []))
        ctx.record(warnings=existing + [w for w in warnings if w not in existing])
