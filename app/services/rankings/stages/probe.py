"""Stage 5, probe: short fine-tunes of the chosen candidates against the same architecture trained from
scratch (and a linear probe, and a named reference), paired seeds, equal budget — one ``probe_runs`` row
per (candidate, arm, seed).

Candidates whose scratch runs are identical (same architecture, preprocessing and cut) share them: the
scratch arm runs once per group and :func:`share_scratch_runs` copies it to the group's other members,
saying where each row came from.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import select

from app.db.session import unit_of_work
from app.db.tables import ProbeRun
from app.db.upsert import upsert
from app.enums import ProbeArm
from app.runtime import Runtime
from app.services.rankings.inputs import RankingInputs
from app.services.rankings.plan import Plan


def probe_candidates(plan: Plan, table: list[dict[str, Any]]) -> list[str]:
    """The top-k by rank, plus up to ``max_suspicious`` sources flagged as suspicious (far domain or low
    score), the lowest-ranked first: those are where negative transfer hides."""
    if plan.probe is None:
        return []
    chosen = [r["backbone_id"] for r in table[: plan.probe.top_k]]
    if plan.probe.include_suspicious:
        flagged = [r["backbone_id"] for r in reversed(table) if r["flags"] and r["backbone_id"] not in chosen]
        chosen += flagged[: plan.probe.max_suspicious]
    return chosen


def scratch_group(inputs: RankingInputs, backbone_id: str, layer: str) -> str:
    """Candidates whose scratch runs are identical (same architecture, preprocessing and cut) share them."""
    from app.probes.runner import arch_key

    return f"{arch_key(inputs.adapter(backbone_id))}|{layer}"


def probe_units(inputs: RankingInputs, candidates: list[str], best_layers: dict[str, str]) -> list[tuple[Any, ...]]:
    """(job, backbone, layer, arm, seed) units; a scratch run is computed once per scratch group."""
    plan = inputs.plan
    assert plan.probe is not None
    units: list[tuple[Any, ...]] = []
    seen_groups: set[str] = set()
    for b in candidates:
        layer = inputs.resolve_layer(b, best_layers[b])
        group = scratch_group(inputs, b, layer)
        for arm in plan.probe.arms:
            if arm == ProbeArm.scratch.value and group in seen_groups:
                continue
            for seed in range(plan.probe.seeds):
                units.append((plan.job_id, b, layer, arm, seed))
        seen_groups.add(group)
    return units


def share_scratch_runs(inputs: RankingInputs, candidates: list[str], best_layers: dict[str, str]) -> None:
    """Copy each scratch group's runs to the group's other candidates (rows say where they came from)."""
    plan = inputs.plan
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for b in candidates:
        layer = inputs.resolve_layer(b, best_layers[b])
        groups[scratch_group(inputs, b, layer)].append((b, layer))
    with unit_of_work(inputs.runtime.sessions) as session:
        runs = {(r.backbone_id, r.seed): r for r in session.scalars(
            select(ProbeRun).where(ProbeRun.job_id == plan.job_id, ProbeRun.arm == ProbeArm.scratch.value))}
        for members in groups.values():
            owner = members[0][0]
            for b, layer in members[1:]:
                for seed in range(plan.probe.seeds if plan.probe else 0):
                    source = runs.get((owner, seed))
                    if source is None:
                        continue
                    upsert(session, ProbeRun, {"job_id": plan.job_id, "backbone_id": b, "arm": ProbeArm.scratch.value,
                                               "seed": seed},
                           {"layer": layer, "metric": source.metric, "steps": source.steps,
                            "seconds": source.seconds, "curve": source.curve,
                            "details": {**(source.details or {}), "shared_from": owner}})


def probe_unit(runtime: Runtime, job_id: uuid.UUID, backbone_id: str, layer: str, arm: str,
               seed: int) -> dict[str, Any]:
    """One probe run (arm × seed) of one candidate; skipped when its row already exists."""
    with runtime.sessions() as session:
        existing = session.scalar(select(ProbeRun).where(
            ProbeRun.job_id == job_id, ProbeRun.backbone_id == backbone_id, ProbeRun.arm == arm,
            ProbeRun.seed == seed))
        if existing is not None:
            return {"backbone": backbone_id, "arm": arm, "seed": seed, "metric": existing.metric, "cached": True}
    result = run_probe_arm(RankingInputs.load(runtime, job_id), backbone_id, layer, arm, seed)
    with unit_of_work(runtime.sessions) as session:
        upsert(session, ProbeRun, {"job_id": job_id, "backbone_id": backbone_id, "arm": arm, "seed": seed},
               {"layer": layer, "metric": result["metric"], "steps": result["steps"],
                "seconds": result["seconds"], "details": result["details"], "curve": result["curve"]})
    return {"backbone": backbone_id, "arm": arm, "seed": seed, "metric": result["metric"]}


def _budget(plan: Plan):
    from app.probes.budget import ProbeBudget

    assert plan.probe is not None
    kwargs: dict[str, Any] = {"steps": plan.probe.budget_steps, "seconds": plan.probe.budget_seconds,
                              "batch_size": plan.probe.batch_size}
    if plan.probe.lr_grid:
        kwargs["lr_grid"] = plan.probe.lr_grid
    return ProbeBudget(**kwargs)


def _probe_data(inputs: RankingInputs, split: str, adapter: Any):
    from app.probes.data import ProbeData

    stored = inputs.stored
    labels = stored.labels[stored.split(split)]
    if not inputs.plan.classification:
        labels = labels.astype(np.float32)
    return ProbeData(stored.torch_dataset(split, transform=adapter.transform), labels,
                     task_type=inputs.plan.task_type, num_classes=inputs.num_classes)


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
