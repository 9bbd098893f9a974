"""What the ranking units read: the target dataset, backbone specs and adapters, cached embeddings, source
statistics, trivial baselines, and probe runs — one place that binds the job to the domain packages.

Adapters are expensive to build, so each process keeps the few it used last (units of one job arrive
one after the other on the same worker).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from app.backbones.base import BackboneAdapter, BackboneSpec
from app.datasets.stored import StoredDataset
from app.db.session import unit_of_work
from app.runtime import Runtime
from app.services.ranking_plan import FEATURES_PREFIX, Plan, pick_layers

FEATURES_LAYER = "features"
_ADAPTERS: OrderedDict[tuple[int, str], BackboneAdapter] = OrderedDict()
_ADAPTERS_LOCK = threading.Lock()
_MAX_ADAPTERS = 4
_NO_HEAD: set[tuple[str, str]] = set()


def stored_dataset(runtime: Runtime, plan: Plan) -> StoredDataset:
    return StoredDataset(runtime.store, plan.dataset_prefix)


def backbone_spec(runtime: Runtime, plan: Plan, backbone_id: str) -> BackboneSpec:
    from app.services.backbones import get_spec

    with runtime.sessions() as session:
        return get_spec(session, plan.project_id, runtime.settings, backbone_id)[0]


def adapter(runtime: Runtime, plan: Plan, backbone_id: str) -> BackboneAdapter:
    from app.embeddings.pipeline import resolve_device
    from app.services.backbones import load_adapter

    key = (id(runtime), backbone_id)
    with _ADAPTERS_LOCK:
        if key in _ADAPTERS:
            _ADAPTERS.move_to_end(key)
            return _ADAPTERS[key]
    with runtime.sessions() as session:
        built = load_adapter(session, plan.project_id, runtime.settings, runtime.store, backbone_id,
                             device=str(resolve_device(runtime.settings.device)))
    with _ADAPTERS_LOCK:
        _ADAPTERS[key] = built
        while len(_ADAPTERS) > _MAX_ADAPTERS:
            _ADAPTERS.popitem(last=False)
    return built


def job_layers(runtime: Runtime, plan: Plan, backbone_id: str) -> list[str]:
    if backbone_id.startswith(FEATURES_PREFIX):
        return [FEATURES_LAYER]
    spec = backbone_spec(runtime, plan, backbone_id)
    return pick_layers([ly.name for ly in spec.layers], [ly.depth for ly in spec.layers], plan.layers)


def layer_depths(runtime: Runtime, plan: Plan, backbone_id: str) -> dict[str, float]:
    if backbone_id.startswith(FEATURES_PREFIX):
        return {FEATURES_LAYER: 1.0}
    return {ly.name: ly.depth for ly in backbone_spec(runtime, plan, backbone_id).layers}


def train_embeddings(runtime: Runtime, plan: Plan, backbone_id: str, layers: list[str]) -> dict[str, np.ndarray]:
    """``{layer: (n_train, d)}`` from the content-addressed cache, computed on a miss."""
    stored = stored_dataset(runtime, plan)
    if backbone_id.startswith(FEATURES_PREFIX):
        return {FEATURES_LAYER: np.asarray(stored.features()[stored.split("train")], dtype=np.float32)}
    from app.embeddings.cache import embed_dataset

    spec = backbone_spec(runtime, plan, backbone_id)
    with unit_of_work(runtime.sessions) as session:
        return embed_dataset(session, runtime.store, stored, plan.dataset_digest, spec, layers, "train",
                             adapter_factory=lambda _spec: adapter(runtime, plan, backbone_id),
                             options=_embed_options(runtime))


def _embed_options(runtime: Runtime):
    from app.embeddings.pipeline import EmbedOptions

    return EmbedOptions.from_settings(runtime.settings)


def has_source_head(runtime: Runtime, plan: Plan, backbone_id: str) -> bool:
    return train_source_probs(runtime, plan, backbone_id) is not None


class _NoSourceHead(Exception):
    pass


def train_source_probs(runtime: Runtime, plan: Plan, backbone_id: str) -> np.ndarray | None:
    """Source-head probabilities on the train split (LEEP/NCE), or None when the backbone has no head."""
    if backbone_id.startswith(FEATURES_PREFIX) or (plan.dataset_digest, backbone_id) in _NO_HEAD:
        return None
    from app.embeddings.cache import source_probs

    def build(_spec: BackboneSpec) -> BackboneAdapter:  # called only on a cache miss
        built = adapter(runtime, plan, backbone_id)
        if not built.has_source_head:
            raise _NoSourceHead(backbone_id)
        return built

    spec = backbone_spec(runtime, plan, backbone_id)
    try:
        with unit_of_work(runtime.sessions) as session:
            return source_probs(session, runtime.store, stored_dataset(runtime, plan), plan.dataset_digest, spec,
                                "train", adapter_factory=build, options=_embed_options(runtime))
    except _NoSourceHead:
        _NO_HEAD.add((plan.dataset_digest, backbone_id))
        return None


def source_statistics(runtime: Runtime, plan: Plan, backbone_id: str, layer: str) -> tuple[np.ndarray, np.ndarray] | None:
    """A stored sample of the source's own embeddings at ``layer`` (from its card), for domain similarity."""
    if backbone_id.startswith(FEATURES_PREFIX):
        return None
    spec = backbone_spec(runtime, plan, backbone_id)
    stats = spec.extra.get("source_stats") or {}
    name = stats.get("file") if isinstance(stats, dict) else None
    if not name:
        return None
    base = Path(spec.extra.get("card_dir") or runtime.settings.models_dir)
    path = (base / name).resolve()
    if not path.is_file() or base.resolve() not in path.parents:
        return None
    with np.load(path, allow_pickle=False) as z:
        if f"{layer}/features" not in z:
            return None
        return np.asarray(z[f"{layer}/features"], dtype=np.float64), np.asarray(z[f"{layer}/labels"])


def baselines(runtime: Runtime, plan: Plan, names: list[str], *, seed: int) -> dict[str, dict[str, Any]]:
    """Trivial, data-independent baselines shown beside the metrics (any metric must beat them):
    source accuracy, parameter count, and a seeded random order — each with the rank it would give."""
    from app.ranking import rank_with_ties

    values: dict[str, dict[str, float | None]] = {}
    for b in names:
        if b.startswith(FEATURES_PREFIX):
            values[b] = {"source_accuracy": None, "num_params": None}
            continue
        spec = backbone_spec(runtime, plan, b)
        values[b] = {"source_accuracy": spec.source.accuracy if spec.source else None,
                     "num_params": float(spec.num_params) if spec.num_params else None}
    rng = np.random.default_rng(seed)
    random_scores = rng.random(len(names))
    out: dict[str, dict[str, Any]] = {b: {} for b in names}
    for key in ("source_accuracy", "num_params"):
        column = [values[b][key] if values[b][key] is not None else np.nan for b in names]
        ranks = rank_with_ties(column)
        for b, v, r in zip(names, column, ranks, strict=True):
            out[b][key] = {"value": None if not np.isfinite(v) else float(v),
                           "rank": int(r) if np.isfinite(v) else None}
    for b, v, r in zip(names, random_scores, rank_with_ties(random_scores), strict=True):
        out[b]["random"] = {"value": float(v), "rank": int(r)}
    return out


def target_difficulty(runtime: Runtime, plan: Plan, stored: StoredDataset) -> dict[str, Any]:
    """Label-level difficulty of the target (feature-space difficulty is stored per backbone)."""
    labels = stored.labels[stored.split("train")]
    out: dict[str, Any] = {"task_type": plan.task_type, "n_train": int(labels.shape[0])}
    if plan.task_type == "classification":
        counts = np.bincount(labels.astype(np.int64))
        counts = counts[counts > 0]
        p = counts / counts.sum()
        entropy = float(-(p * np.log(p)).sum())
        out.update(n_classes=int(len(counts)), min_per_class=int(counts.min()), max_per_class=int(counts.max()),
                   imbalance=float(1 - entropy / np.log(len(counts))) if len(counts) > 1 else 0.0)
        if plan.is_features:
            from app.transferability import task_difficulty

            d = task_difficulty(stored.features()[stored.split("train")], labels)
            out.update(knn_error=d.knn_error, fisher_separability=d.fisher_separability,
                       intrinsic_dimension=d.intrinsic_dimension)
    else:
        out.update(n_targets=int(labels.shape[1]) if labels.ndim == 2 else 1)
    return out


# -- probes -------------------------------------------------------------------------------------------
def _probe_layer(runtime: Runtime, plan: Plan, backbone_id: str, best_layer: str) -> str:
    return job_layers(runtime, plan, backbone_id)[-1] if best_layer == "mean" else best_layer


def scratch_group(runtime: Runtime, plan: Plan, backbone_id: str, layer: str) -> str:
    """Candidates whose scratch runs are identical (same architecture, preprocessing and cut) share them."""
    from app.probes.runner import arch_key

    return f"{arch_key(adapter(runtime, plan, backbone_id))}|{layer}"


def probe_units(runtime: Runtime, plan: Plan, candidates: list[str],
                best_layers: dict[str, str]) -> list[tuple[Any, ...]]:
    """(job, backbone, layer, arm, seed) units; a scratch run is computed once per scratch group and
    copied to the group's other candidates by :func:`share_scratch_runs`."""
    assert plan.probe is not None
    units: list[tuple[Any, ...]] = []
    seen_groups: set[str] = set()
    for b in candidates:
        layer = _probe_layer(runtime, plan, b, best_layers[b])
        group = scratch_group(runtime, plan, b, layer)
        for arm in plan.probe.arms:
            if arm == "scratch" and group in seen_groups:
                continue
            for seed in range(plan.probe.seeds):
                units.append((plan.job_id, b, layer, arm, seed))
        seen_groups.add(group)
    return units


def _probe_budget(plan: Plan):
    from app.probes.budget import ProbeBudget

    assert plan.probe is not None
    kwargs: dict[str, Any] = {"steps": plan.probe.budget_steps, "seconds": plan.probe.budget_seconds,
                              "batch_size": plan.probe.batch_size}
    if plan.probe.lr_grid:
        kwargs["lr_grid"] = plan.probe.lr_grid
    return ProbeBudget(**kwargs)


def _probe_data(stored: StoredDataset, split: str, built: BackboneAdapter, task_type: str, num_classes: int | None):
    from app.probes.data import ProbeData

    indices = stored.split(split)
    labels = stored.labels[indices]
    if task_type != "classification":
        labels = labels.astype(np.float32)
    return ProbeData(stored.torch_dataset(split, transform=built.transform), labels, task_type=task_type,
                     num_classes=num_classes)


def run_probe_arm(runtime: Runtime, plan: Plan, backbone_id: str, layer: str, arm: str, seed: int) -> dict[str, Any]:
    """Train one arm × seed on the train split (inner validation carved per seed) and report on the
    dataset's held-out val split."""
    from app.embeddings.pipeline import resolve_device
    from app.probes.runner import run_arm

    stored = stored_dataset(runtime, plan)
    num_classes = len(stored.manifest.classes) if plan.task_type == "classification" and stored.manifest.classes \
        else None
    device = resolve_device(runtime.settings.device)
    if arm == "reference":
        if plan.reference_backbone is None:
            raise ValueError("the reference arm needs reference_backbone")
        built = adapter(runtime, plan, plan.reference_backbone)
        run_layer = job_layers(runtime, plan, plan.reference_backbone)[-1]
    else:
        built = adapter(runtime, plan, backbone_id)
        run_layer = layer
    data = _probe_data(stored, "train", built, plan.task_type, num_classes)
    held_out = _probe_data(stored, "val", built, plan.task_type, num_classes)
    cached = None
    if arm == "linear":
        cached = train_embeddings(runtime, plan, backbone_id, [layer])[layer]
    result = run_arm(built, run_layer, data, arm, seed, budget=_probe_budget(plan), device=device,
                     cached_embeddings=cached, eval_data=held_out, backbone_id=backbone_id)
    return {"metric": result.metric, "steps": result.steps, "seconds": result.seconds,
            "details": {**result.details, "run_layer": run_layer}, "curve": result.curve}
