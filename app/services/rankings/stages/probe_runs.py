"""The probe stage's unit: one run (arm × seed, at the full budget or a successive-halving rung's) of one
candidate — skipped when its row exists, copied when an identical unit ran before in any job (same
``reuse_key``), trained otherwise — and the recipe and data it trains with."""

from __future__ import annotations

import hashlib
import json
import uuid
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


def reuse_key(inputs: RankingInputs, backbone_id: str, layer: str, arm: str, seed: int,
              rung_steps: int = 0) -> str:
    """What a probe run's result depends on: target data and split, arm, the weights (or, for scratch, only
    the architecture and preprocessing), the cut, the recipe (its step budget: the rung's) and the seed."""
    from app.probes.runner import arch_key

    plan = inputs.plan
    model = plan.reference_backbone if arm == ProbeArm.reference.value else backbone_id
    adapter = inputs.adapter(model)
    identity = arch_key(adapter) if arm == ProbeArm.scratch.value else \
        f"{adapter.spec.id}@{adapter.spec.weights_digest}|{arch_key(adapter)}"
    payload = {"dataset": plan.dataset_digest, "split": [inputs.runtime.settings.split_seed,
                                                         inputs.runtime.settings.val_fraction],
               "arm": arm, "model": identity, "layer": layer, "recipe": _budget(plan, rung_steps).to_dict(),
               "seed": seed,
               "task": plan.task_type}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def probe_unit(runtime: Runtime, job_id: uuid.UUID, backbone_id: str, layer: str, arm: str,
               seed: int, rung_steps: int = 0) -> dict[str, Any]:
    """One probe run (arm × seed, at the full budget or a halving rung's) of one candidate: skipped when its
    row exists, copied when an identical unit ran before (same reuse key, any job), trained otherwise."""
    with runtime.sessions() as session:
        existing = session.scalar(select(ProbeRun).where(
            ProbeRun.job_id == job_id, ProbeRun.backbone_id == backbone_id, ProbeRun.arm == arm,
            ProbeRun.seed == seed, ProbeRun.rung_steps == rung_steps))
        if existing is not None:
            return {"backbone": backbone_id, "arm": arm, "seed": seed, "metric": existing.metric, "cached": True}
    inputs = RankingInputs.load(runtime, job_id)
    key = reuse_key(inputs, backbone_id, layer, arm, seed, rung_steps)
    with runtime.sessions() as session:
        done = session.scalar(select(ProbeRun).where(ProbeRun.reuse_key == key, ProbeRun.metric.is_not(None))
                              .order_by(ProbeRun.created_at).limit(1))
        result = None if done is None else {
            "metric": done.metric, "steps": done.steps, "seconds": done.seconds, "curve": done.curve,
            "details": {**(done.details or {}), "reused_from": {"job_id": str(done.job_id),
                                                                "backbone_id": done.backbone_id}}}
    if result is None:
        result = run_probe_arm(inputs, backbone_id, layer, arm, seed, rung_steps)
    with unit_of_work(runtime.sessions) as session:
        upsert(session, ProbeRun, {"job_id": job_id, "backbone_id": backbone_id, "arm": arm, "seed": seed,
                                   "rung_steps": rung_steps},
               {"layer": layer, "metric": result["metric"], "steps": result["steps"], "reuse_key": key,
                "seconds": result["seconds"], "details": result["details"], "curve": result["curve"]})
    return {"backbone": backbone_id, "arm": arm, "seed": seed, "metric": result["metric"],
            "reused": "reused_from" in result["details"]}


def _budget(plan: Plan, rung_steps: int = 0):
    """The job's recipe; at a successive-halving rung, with that rung's step budget."""
    from app.probes.budget import ProbeBudget

    assert plan.probe is not None
    kwargs: dict[str, Any] = {"steps": rung_steps or plan.probe.budget_steps, "seconds": plan.probe.budget_seconds,
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


def run_probe_arm(inputs: RankingInputs, backbone_id: str, layer: str, arm: str, seed: int,
                  rung_steps: int = 0) -> dict[str, Any]:
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
    result = run_arm(adapter, run_layer, _probe_data(inputs, "train", adapter), arm, seed,
                     budget=_budget(plan, rung_steps),
                     device=inputs.device, cached_embeddings=cached,
                     eval_data=_probe_data(inputs, "val", adapter), backbone_id=backbone_id)
    return {"metric": result.metric, "steps": result.steps, "seconds": result.seconds,
            "details": {**result.details, "run_layer": run_layer}, "curve": result.curve}
