"""Stage 5, probe: short fine-tunes of the chosen candidates against the same architecture trained from
scratch (and a linear probe, and a named reference), paired seeds, equal budget — one ``probe_runs`` row
per (candidate, arm, seed).

Seeds come in rounds (:class:`~app.probes.sequential.SequentialDesign`): every candidate gets the first
round, then a look at all of them decides who is settled and who gets the next round, until every verdict
is settled, a candidate reaches ``max_seeds`` or its evidence is futile, or the stage's wall-clock budget is
spent. The error control holds under this optional stopping (an anytime-valid confidence sequence, Holm
across candidates), so stopping early costs nothing in validity.

With successive halving (``ProbeOptions.halving``) the rounds above are the last rung's: before it, every
candidate gets one round of finetune and scratch seeds at a short budget, a negative transfer settled
there is final, the best ``1/eta`` by fine-tune metric go on to a budget ``eta`` times longer and the others
stop ``abandoned`` (:func:`app.probes.halving.halving_step`); runs carry their rung's ``rung_steps`` (0 for the
full budget), and Holm runs over candidates × rungs.

Candidates whose scratch runs are identical (same architecture, preprocessing and cut) share them: the
scratch arm runs once per group and seed, and :func:`share_scratch_runs` copies it to the group's other
members. Every run carries a ``reuse_key`` digesting what its result depends on; a unit whose key was run
before — in this job or any earlier one — copies that result instead of training again.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from app.db.session import unit_of_work
from app.db.tables import ProbeRun
from app.db.upsert import upsert
from app.enums import ProbeArm
from app.jobs.context import JobContext
from app.services.rankings.inputs import RankingInputs
from app.services.rankings.plan import Plan
from app.services.rankings.stages.probe_runs import probe_unit

GPU = {"gpu": 1.0}
EVIDENCE_ARMS = (ProbeArm.finetune.value, ProbeArm.scratch.value)


def probe_candidates(plan: Plan, table: list[dict[str, Any]]) -> list[str]:
    """The top-k by rank, plus — when the request asks — up to ``max_suspicious`` sources flagged as
    suspicious (far domain or low score), the lowest-ranked first: those are where negative transfer hides."""
    if plan.probe is None:
        return []
    if plan.probe.candidates:  # named by the request (e.g. an extension of an earlier job)
        ranked = {r["backbone_id"] for r in table}
        return [c for c in plan.probe.candidates if c in ranked]
    chosen = [r["backbone_id"] for r in table[: plan.probe.top_k]]
    if plan.probe.include_suspicious:
        flagged = [r["backbone_id"] for r in reversed(table) if r["flags"] and r["backbone_id"] not in chosen]
        chosen += flagged[: plan.probe.max_suspicious]
    return chosen


def scratch_group(inputs: RankingInputs, backbone_id: str, layer: str) -> str:
    """Candidates whose scratch runs are identical (same architecture, preprocessing and cut) share them."""
    from app.probes.runner import arch_key

    return f"{arch_key(inputs.adapter(backbone_id))}|{layer}"


def probe_units(inputs: RankingInputs, pending: dict[str, list[int]], best_layers: dict[str, str],
                rung_steps: int = 0) -> list[tuple[Any, ...]]:
    """(job, backbone, layer, arm, seed, rung) units for each candidate's pending seeds; a scratch seed is
    trained once per scratch group. A short successive-halving rung (``rung_steps`` > 0) runs only the
    arms a verdict pairs (finetune, scratch)."""
    plan = inputs.plan
    assert plan.probe is not None
    arms = EVIDENCE_ARMS if rung_steps else plan.probe.arms
    units: list[tuple[Any, ...]] = []
    scratch_seen: set[tuple[str, int]] = set()
    for b, seeds in pending.items():
        layer = inputs.resolve_layer(b, best_layers[b])
        group = scratch_group(inputs, b, layer)
        for arm in arms:
            for seed in seeds:
                if arm == ProbeArm.scratch.value:
                    if (group, seed) in scratch_seen:
                        continue
                    scratch_seen.add((group, seed))
                units.append((plan.job_id, b, layer, arm, seed, rung_steps))
    return units


def job_runs(inputs: RankingInputs, candidates: list[str], rung_steps: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Every stored run of the job's candidates at one rung (0: the full budget), as mappings the verdict
    statistics read."""
    out: dict[str, list[dict[str, Any]]] = {c: [] for c in candidates}
    with inputs.runtime.sessions() as session:
        for r in session.scalars(select(ProbeRun).where(ProbeRun.job_id == inputs.plan.job_id,
                                                        ProbeRun.rung_steps == rung_steps)):
            if r.backbone_id in out:
                out[r.backbone_id].append({"arm": r.arm, "seed": r.seed, "metric": r.metric, "steps": r.steps,
                                           "seconds": r.seconds, "curve": r.curve, "details": r.details or {}})
    return out


def share_scratch_runs(inputs: RankingInputs, pending: dict[str, list[int]], best_layers: dict[str, str],
                       rung_steps: int = 0) -> None:
    """Give each candidate the scratch runs of its pending seeds that another member of its scratch group
    trained (rows say where they came from)."""
    plan = inputs.plan
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for b in pending:
        layer = inputs.resolve_layer(b, best_layers[b])
        groups[scratch_group(inputs, b, layer)].append((b, layer))
    with unit_of_work(inputs.runtime.sessions) as session:
        runs: dict[str, dict[int, ProbeRun]] = defaultdict(dict)
        for r in session.scalars(select(ProbeRun).where(ProbeRun.job_id == plan.job_id,
                                                        ProbeRun.arm == ProbeArm.scratch.value,
                                                        ProbeRun.rung_steps == rung_steps)):
            runs[r.backbone_id][r.seed] = r
        for members in groups.values():
            by_seed: dict[int, tuple[str, ProbeRun]] = {}
            for b, _ in members:
                for seed, r in runs.get(b, {}).items():
                    if not (r.details or {}).get("shared_from"):
                        by_seed.setdefault(seed, (b, r))
            for b, layer in members:
                for seed in pending[b]:
                    if seed not in by_seed or seed in runs.get(b, {}):
                        continue
                    owner, source = by_seed[seed]
                    upsert(session, ProbeRun, {"job_id": plan.job_id, "backbone_id": b,
                                               "arm": ProbeArm.scratch.value, "seed": seed,
                                               "rung_steps": rung_steps},
                           {"layer": layer, "metric": source.metric, "steps": source.steps,
                            "seconds": source.seconds, "curve": source.curve, "reuse_key": source.reuse_key,
                            "details": {**(source.details or {}), "shared_from": owner}})


@dataclass
class ProbeOutcome:
    """What the probe stage decided, for the verdict stage: each candidate's stop reason (settled, max_seeds,
    futile, time_budget, abandoned — none for a fixed design), its rounds, the rung its verdict speaks for
    (``rung_steps``, 0 = the full budget), every successive-halving rung's decision and the Holm family."""

    stopped: dict[str, str] = field(default_factory=dict)
    rounds: dict[str, int] = field(default_factory=dict)
    reached: dict[str, int] = field(default_factory=dict)
    rungs: list[dict[str, Any]] = field(default_factory=list)
    schedule: list[tuple[int, int]] = field(default_factory=list)
    family_size: int | None = None


def probe_stage(ctx: JobContext, inputs: RankingInputs, candidates: list[str],
                best_layers: dict[str, str]) -> ProbeOutcome:
    """Run the rungs (successive halving, when asked) and the rounds of the full-budget rung."""
    from app.probes.halving import arm_means, halving_step
    from app.probes.record import paired_evidence
    from app.probes.sequential import look

    plan = inputs.plan
    assert plan.probe is not None
    design = plan.probe.design()
    started = time.monotonic()
    schedule = plan.probe.schedule(len(candidates))
    # each (candidate, rung) is its own Δ: Holm over all of them, fixed before anything runs
    out = ProbeOutcome(rounds=dict.fromkeys(candidates, 0), schedule=schedule,
                       family_size=len(candidates) * len(schedule) if len(schedule) > 1 else None)
    survivors = list(candidates)
    for r, (steps, _) in enumerate(schedule[:-1]):
        pending = {c: design.next_seeds(0) for c in survivors}
        out.rounds.update(dict.fromkeys(survivors, 0))  # a verdict counts the rounds of its own rung
        _run_round(ctx, inputs, pending, best_layers, steps, out)
        runs = job_runs(inputs, survivors, steps)
        looks = look({c: paired_evidence(runs[c])[0] for c in survivors}, design, family_size=out.family_size,
                     attempted={c: {x["seed"] for x in runs[c]} for c in survivors})
        rung = halving_step(looks, arm_means(runs), keep=schedule[r + 1][1], steps=steps)
        out.rungs.append(rung.to_dict())
        ctx.record(probe_rungs=out.rungs)
        out.stopped.update(rung.stopped)
        out.reached.update(dict.fromkeys(rung.stopped, steps))
        survivors = rung.kept
        if time.monotonic() - started >= plan.probe.time_budget_seconds:
            out.stopped.update(dict.fromkeys(survivors, "time_budget"))
            out.reached.update(dict.fromkeys(survivors, steps))
            return out
    out.reached.update(dict.fromkeys(survivors, 0))
    out.rounds.update(dict.fromkeys(survivors, 0))
    pending = {c: design.next_seeds(0) for c in survivors}
    while pending:
        _run_round(ctx, inputs, pending, best_layers, 0, out)
        if plan.probe.fixed:
            break
        runs = job_runs(inputs, survivors)
        attempted = {c: {r["seed"] for r in runs[c] if r["arm"] in EVIDENCE_ARMS} for c in survivors}
        linear = ({c: paired_evidence(runs[c], arm=ProbeArm.linear.value)[0] for c in survivors}
                  if plan.probe.linear_evidence else None)
        final = {c: out.stopped[c] for c in survivors if c in out.stopped}
        looks = look({c: paired_evidence(runs[c])[0] for c in survivors}, design, stopped=final,
                     attempted=attempted, linear=linear, family_size=out.family_size)
        # a candidate that stopped keeps its reason: it gets no more seeds when others' evidence moves Holm
        out.stopped.update({c: lk.action for c, lk in looks.items()
                            if lk.action != "continue" and c not in out.stopped})
        pending = {c: lk.next_seeds for c, lk in looks.items() if lk.action == "continue" and lk.next_seeds}
        if pending and time.monotonic() - started >= plan.probe.time_budget_seconds:
            out.stopped.update(dict.fromkeys(pending, "time_budget"))
            pending = {}
    return out


def _run_round(ctx: JobContext, inputs: RankingInputs, pending: dict[str, list[int]], best_layers: dict[str, str],
               rung_steps: int, out: ProbeOutcome) -> None:
    ctx.stage("probe", probe_unit, probe_units(inputs, pending, best_layers, rung_steps), resources=GPU)
    share_scratch_runs(inputs, pending, best_layers, rung_steps)
    for c in pending:
        out.rounds[c] += 1
    ctx.check_cancelled()
