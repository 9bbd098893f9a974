"""Stage 6, verdict: the paired fine-tune − scratch evidence of each probed candidate, judged by the
job's sequential design (anytime-valid confidence sequence + one fixed-n test, Holm across candidates) →
positive / no_benefit / negative_transfer / inconclusive, with the text a user reads and the record of what
was run: rounds, seeds, steps per arm, per-arm accuracies, learning rates, time-outs, the stop reason and
the learning curves (``details``).

A run that timed out before its step budget is never evidence without saying so: its seed is excluded
(named in the record), and the verdict's warnings — copied into the job's warnings — say it.
"""

from __future__ import annotations

from typing import Any

from app.db.session import unit_of_work
from app.db.tables import VerdictRow
from app.db.upsert import upsert
from app.jobs.context import JobContext
from app.services.rankings.inputs import RankingInputs
from app.services.rankings.stages.probe import ProbeOutcome, job_runs


def verdict_stage(ctx: JobContext, inputs: RankingInputs, candidates: list[str], outcome: ProbeOutcome) -> None:
    from app.probes.record import verdict_records

    plan = inputs.plan
    assert plan.probe is not None
    design = plan.probe.design()
    stopped = {c: r for c, r in outcome.stopped.items() if c in candidates}
    records = []
    # a candidate successive halving stopped at a short rung is judged on that rung's runs, Holm-adjusted
    # with the candidates that ran there; the others on the full budget's
    for steps, rung in _rungs(outcome):
        judged = [c for c in candidates if outcome.reached.get(c, 0) == steps]
        if not judged:
            continue
        peers = rung["candidates"] if rung else judged
        halving = None if not outcome.rungs else {c: _halving_record(plan, outcome, steps) for c in peers}
        records += [rec for rec in verdict_records(
            job_runs(inputs, peers, steps), design, rounds=outcome.rounds,
            stopped={c: r for c, r in stopped.items() if c in peers}, family_size=outcome.family_size,
            linear_evidence=plan.probe.linear_evidence and not steps, halving=halving) if rec.backbone_id in judged]
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


def _rungs(outcome: ProbeOutcome) -> list[tuple[int, dict[str, Any] | None]]:
    """(rung_steps, that rung's decision) per short rung, then (0, None) for the full budget."""
    return [(int(r["steps"]), r) for r in outcome.rungs] + [(0, None)]


def _halving_record(plan: Any, outcome: ProbeOutcome, rung_steps: int) -> dict[str, Any]:
    return {"rung_steps": rung_steps, "budget_steps": rung_steps or plan.probe.budget_steps,
            "full_steps": plan.probe.budget_steps, "eta": plan.probe.halving["eta"],
            "schedule": [list(x) for x in outcome.schedule], "rungs": outcome.rungs}
