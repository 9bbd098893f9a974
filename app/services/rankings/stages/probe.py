"""Stage 5, probe: short fine-tunes of the chosen candidates against the same architecture trained from
scratch (and a linear probe, and a named reference), paired seeds, equal budget — one ``probe_runs`` row
per (candidate, arm, seed).

Seeds come in rounds (:class:`~app.probes.sequential.SequentialDesign`): every candidate gets the first
round, then a look at all of them decides who is settled and who gets the next round, until every verdict
is settled, a candidate reaches ``max_seeds`` or its evidence is futile, or the stage's wall-clock budget is
spent. The error control holds under this optional stopping (an anytime-valid confidence sequence, Holm
across candidates), so stopping early costs nothing in validity.

Candidates whose scratch runs are identical (same architecture, preprocessing and cut) share them: the
scratch arm runs once per group and seed, and :func:`share_scratch_runs` copies it to the group's other
members. Every run carries a ``reuse_key`` digesting what its result depends on; a unit whose key was run
before — in this job or any earlier one — copies that result instead of training again.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import select

from app.db.session import unit_of_work
from app.db.tables import ProbeRun
from app.db.upsert import upsert
from app.enums import ProbeArm
from app.jobs.context import JobContext
from app.runtime import Runtime
from app.services.rankings.inputs import RankingInputs
from app.services.rankings.plan import Plan

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


def probe_units(inputs: RankingInputs, pending: dict[str, list[int]],
                best_layers: dict[str, str]) -> list[tuple[Any, ...]]:
    """(job, backbone, layer, arm, seed) units for each candidate's pending seeds; a scratch seed is trained
    once per scratch group."""
    plan = inputs.plan
    assert plan.probe is not None
    units: list[tuple[Any, ...]] = []
    scratch_seen: set[tuple[str, int]] = set()
    for b, seeds in pending.items():
        layer = inputs.resolve_layer(b, best_layers[b])
        group = scratch_group(inputs, b, layer)
        for arm in plan.probe.arms:
            for seed in seeds:
                if arm == ProbeArm.scratch.value:
                    if (group, seed) in scratch_seen:
                        continue
                    scratch_seen.add((group, seed))
                units.append((plan.job_id, b, layer, arm, seed))
    return units


def job_runs(inputs: RankingInputs, candidates: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every stored run of the job's candidates, as mappings the verdict statistics read."""
    out: dict[str, list[dict[str, Any]]] = {c: [] for c in candidates}
    with inputs.runtime.sessions() as session:
        for r in session.scalars(select(ProbeRun).where(ProbeRun.job_id == inputs.plan.job_id)):
            if r.backbone_id in out:
                out[r.backbone_id].append({"arm": r.arm, "seed": r.seed, "metric": r.metric, "steps": r.steps,
                                           "seconds": r.seconds, "curve": r.curve, "details": r.details or {}})
    return out


def share_scratch_runs(inputs: RankingInputs, pending: dict[str, list[int]], best_layers: dict[str, str]) -> None:
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
                                                        ProbeRun.arm == ProbeArm.scratch.value)):
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
                                               "arm": ProbeArm.scratch.value, "seed": seed},
                           {"layer": layer, "metric": source.metric, "steps": source.steps,
                            "seconds": source.seconds, "curve": source.curve, "reuse_key": source.reuse_key,
                            "details": {**(source.details or {}), "shared_from": owner}})


def probe_stage(ctx: JobContext, inputs: RankingInputs, candidates: list[str],
                best_layers: dict[str, str]) -> tuple[dict[str, str], dict[str, int]]:
    """Run the rounds; returns (each candidate's stop reason: settled, max_seeds, futile, time_budget — or
    none for a fixed design, the rounds each candidate received)."""
    from app.probes.record import paired_evidence
    from app.probes.sequential import look

    plan = inputs.plan
    assert plan.probe is not None
    design = plan.probe.design()
    started = time.monotonic()
    stopped: dict[str, str] = {}
    rounds = dict.fromkeys(candidates, 0)
    pending = {c: design.next_seeds(0) for c in candidates}
    while pending:
        ctx.stage("probe", probe_unit, probe_units(inputs, pending, best_layers), resources=GPU)
        share_scratch_runs(inputs, pending, best_layers)
        for c in pending:
            rounds[c] += 1
        ctx.check_cancelled()
        if plan.probe.fixed:
            break
        runs = job_runs(inputs, candidates)
        attempted = {c: {r["seed"] for r in runs[c] if r["arm"] in EVIDENCE_ARMS} for c in candidates}
        linear = ({c: paired_evidence(runs[c], arm=ProbeArm.linear.value)[0] for c in candidates}
                  if plan.probe.linear_evidence else None)
        looks = look({c: paired_evidence(runs[c])[0] for c in candidates}, design, stopped=stopped,
                     attempted=attempted, linear=linear)
        # a candidate that stopped keeps its reason: it gets no more seeds when others' evidence moves Holm
        stopped.update({c: lk.action for c, lk in looks.items() if lk.action != "continue" and c not in stopped})
        pending = {c: lk.next_seeds for c, lk in looks.items() if lk.action == "continue" and lk.next_seeds}
        if pending and time.monotonic() - started >= plan.probe.time_budget_seconds:
            stopped.update(dict.fromkeys(pending, "time_budget"))
            pending = {}
    return stopped, rounds


def reuse_key(inputs: RankingInputs, backbone_id: str, layer: str, arm: str, seed: int) -> str:
    """What a probe run's result depends on: target data and split, arm, the weights (or, for scratch, only
    the architecture and preprocessing), the cut, the recipe and the seed."""
    from app.probes.runner import arch_key

    plan = inputs.plan
    model = plan.reference_backbone if arm == ProbeArm.reference.value else backbone_id
    adapter = inputs.adapter(model)
    identity = arch_key(adapter) if arm == ProbeArm.scratch.value else \
        f"{adapter.spec.id}@{adapter.spec.weights_digest}|{arch_key(adapter)}"
    payload = {"dataset": plan.dataset_digest, "split": [inputs.runtime.settings.split_seed,
                                                         inputs.runtime.settings.val_fraction],
               "arm": arm, "model": identity, "layer": layer, "recipe": _budget(plan).to_dict(), "seed": seed,
               "task": plan.task_type}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def probe_unit(runtime: Runtime, job_id: uuid.UUID, backbone_id: str, layer: str, arm: str,
               seed: int) -> dict[str, Any]:
    """One probe run (arm × seed) of one candidate: skipped when its row exists, copied when an identical
    unit ran before (same reuse key, any job), trained otherwise."""
    with runtime.sessions() as session:
        existing = session.scalar(select(ProbeRun).where(
            ProbeRun.job_id == job_id, ProbeRun.backbone_id == backbone_id, ProbeRun.arm == arm,
            ProbeRun.seed == seed))
        if existing is not None:
            return {"backbone": backbone_id, "arm": arm, "seed": seed, "metric": existing.metric, "cached": True}
    inputs = RankingInputs.load(runtime, job_id)
    key = reuse_key(inputs, backbone_id, layer, arm, seed)
    with runtime.sessions() as session:
        done = session.scalar(select(ProbeRun).where(ProbeRun.reuse_key == key, ProbeRun.metric.is_not(None))
                              .order_by(ProbeRun.created_at).limit(1))
        result = None if done is None else {
            "metric": done.metric, "steps": done.steps, "seconds": done.seconds, "curve": done.curve,
            "details": {**(done.details or {}), "reused_from": {"job_id": str(done.job_id),
                                                                "backbone_id": done.backbone_id}}}
    if result is None:
        result = run_probe_arm(inputs, backbone_id, layer, arm, seed)
    with unit_of_work(runtime.sessions) as session:
        upsert(session, ProbeRun, {"job_id": job_id, "backbone_id": backbone_id, "arm": arm, "seed": seed},
               {"layer": layer, "metric": result["metric"], "steps": result["steps"], "reuse_key": key,
                "seconds": result["seconds"], "details": result["details"], "curve": result["curve"]})
    return {"backbone": backbone_id, "arm": arm, "seed": seed, "metric": result["metric"],
            "reused": "reused_from" in result["details"]}


def _budget(plan: Plan):
    from app.probes.budget import ProbeBudget

    assert plan.probe is not None
    kwargs: dict[str, Any] = {"steps": plan.probe.budget_steps, "seconds": plan.probe.budget_seconds,
                              "batch_size": plan.probe.batch_size}
    if plan.probe.lr_grid:
        kwargs["lr_grid"] = plan.probe.lr_grid
    return ProbeBudget(**kwargs)


def _probe_data(inputs: RankingInputs, split: str, adapter: Any):
    """The split decoded and preprocessed once per process (the runtime's cache), not once per unit."""
    from app.probes.data import ProbeData

    stored = inputs.stored

    def build() -> ProbeData:
        labels = stored.labels[stored.split(split)]
        if not inputs.plan.classification:
            labels = labels.astype(np.float32)
        return ProbeData(stored.torch_dataset(split, transform=adapter.transform), labels,
                         task_type=inputs.plan.task_type, num_classes=inputs.num_classes)

    # images: the transform is the preprocessing; text: the backbone's own tokenizer
    shape = repr(adapter.spec.preprocessing) if adapter.spec.modality == "image" else adapter.spec.id
    key = (inputs.plan.dataset_digest, split, adapter.spec.modality, shape)
    return inputs.runtime.probe_data.get(key, build)


def run_probe_arm(inputs: RankingInputs, backbone_id: str, layer: str, arm: str, seed: int) -> dict[str, Any]:
    """Train one arm × seed on the train split (inner validation carved per seed) and report on the
    dataset's held-out val split."""
    from app.probes.runner import run_arm

    plan = inputs.plan
    if arm == ProbeArm.reference.value:
        if plan.reference_backbone is None:
            raise ValueError("the reference arm needs reference_backbone")
        adapter = inputs.adapter(plan.reference_backbone)
        run_layer = inputs.layers(plan.reference_backbone)[-1]
    else:
        adapter = inputs.adapter(backbone_id)
        run_layer = layer
    cached = inputs.embeddings(backbone_id, [layer])[layer] if arm == ProbeArm.linear.value else None
    result = run_arm(adapter, run_layer, _probe_data(inputs, "train", adapter), arm, seed, budget=_budget(plan),
                     device=inputs.device, cached_embeddings=cached,
                     eval_data=_probe_data(inputs, "val", adapter), backbone_id=backbone_id)
    return {"metric": result.metric, "steps": result.steps, "seconds": result.seconds,
            "details": {**result.details, "run_layer": run_layer}, "curve": result.curve}
