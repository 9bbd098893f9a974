"""What a ranking job runs, read back from its stored request: the plan every stage and unit shares.

The plan is frozen when the job is created (the request's ``resolved`` block names the concrete backbones,
metrics, arms, seeds and margin), so a job re-run after a worker death computes exactly the same thing.
This module only reads; the request is written by ``requests``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.db.tables import Dataset, Job
from app.enums import Modality
from app.errors import InvalidInput, NotFound

FEATURES_PREFIX = "features:"
SIMILARITY_PREFIX = "similarity."
DIFFICULTY_PREFIX = "difficulty."


@dataclass(frozen=True)
class ProbePlan:
    top_k: int
    include_suspicious: bool
    max_suspicious: int
    first_round: int
    round_size: int
    max_seeds: int
    final_test_seeds: int
    fixed: bool
    candidates: tuple[str, ...] | None
    time_budget_seconds: float
    budget_steps: int
    budget_seconds: float
    arms: tuple[str, ...]
    margin: float
    lr_grid: tuple[float, ...] | None
    batch_size: int
    linear_evidence: bool = False  # the linear arm may settle "positive" (ProbeOptions.linear_evidence)
    halving: dict[str, Any] | None = None  # ProbeOptions.halving: eta, finalists, min_steps

    def schedule(self, n_candidates: int) -> list[tuple[int, int]]:
        """``[(step budget, candidates), …]`` per rung: one full-budget rung without successive halving."""
        if self.halving is None:
            return [(self.budget_steps, n_candidates)]
        from app.probes.budget import ProbeBudget
        from app.probes.halving import rung_schedule

        return rung_schedule(n_candidates, self.budget_steps, eta=int(self.halving["eta"]),
                             min_steps=int(self.halving.get("min_steps") or ProbeBudget().eval_every),
                             final_candidates=int(self.halving["finalists"]))

    def design(self):
        """The :class:`~app.probes.sequential.SequentialDesign` of this job's probe stage."""
        from app.probes.sequential import SequentialDesign

        return SequentialDesign(margin=self.margin, first_round=self.first_round, round_size=self.round_size,
                                max_seeds=self.max_seeds, min_seeds=min(3, self.max_seeds),
                                final_test_seeds=self.final_test_seeds)


@dataclass(frozen=True)
class Plan:
    job_id: uuid.UUID
    project_id: uuid.UUID
    dataset_id: uuid.UUID
    dataset_prefix: str
    dataset_digest: str
    modality: str
    task_type: str
    backbones: tuple[str, ...]
    layers: str | tuple[str, ...]
    layer_mode: str
    metrics: tuple[str, ...]  # the registry metrics the job computes (a pool score's parts included)
    similarity: tuple[str, ...]  # the domain distances computed between each source's sample and the target
    aggregation: str | dict[str, float]
    reference_backbone: str | None
    bootstrap: int
    subset_size: int
    max_samples: int | None
    seed: int
    probe: ProbePlan | None
    request: dict[str, Any] = field(default_factory=dict)
    #: the frozen aggregation (requests._resolve_aggregation): method, weights, ranker, layer rule
    resolved_aggregation: dict[str, Any] = field(default_factory=dict)
    #: the names the request asked for, which enter the aggregate: registry metrics and pool-level scores
    requested_metrics: tuple[str, ...] = ()

    @property
    def pools(self) -> tuple[str, ...]:
        """The pool-level scores requested (``etran``, ``ncti``), combined across backbones in the rank stage."""
        from app.transferability import POOL_SCORES

        return tuple(m for m in self.requested_metrics if m in POOL_SCORES)

    @property
    def is_features(self) -> bool:
        return self.modality == "features"

    @property
    def feature_sets(self) -> dict[str, dict[str, Any]]:
        """Per feature-set candidate (``features:<dataset id>``): its dataset's ``prefix``, ``digest`` and
        ``name``, frozen at creation; empty for jobs of model backbones (and of older features jobs, whose
        one candidate is the target itself)."""
        return (self.request.get("resolved") or {}).get("feature_sets") or {}

    @property
    def classification(self) -> bool:
        return self.task_type == "classification"

    @property
    def directions(self) -> dict[str, bool]:
        from app.transferability import METRICS, POOL_SCORES

        return {**{m: METRICS[m].direction == "higher_is_better" for m in self.metrics},
                **{m: POOL_SCORES[m].direction == "higher_is_better" for m in self.pools}}


def load_plan(session: Session, job_id: uuid.UUID) -> Plan:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    dataset = session.get(Dataset, job.dataset_id) if job.dataset_id else None
    if dataset is None:
        raise NotFound(f"dataset of job {job_id} no longer exists")
    req = job.request
    resolved = req["resolved"]
    probe = None
    if req.get("probe"):
        p = req["probe"]
        design = resolved["design"]
        probe = ProbePlan(top_k=p["top_k"], include_suspicious=p["include_suspicious"],
                          max_suspicious=p.get("max_suspicious", 2), first_round=design["first_round"],
                          round_size=design["round_size"], max_seeds=design["max_seeds"], fixed=design["fixed"],
                          final_test_seeds=design.get("final_test_seeds") or design["max_seeds"],
                          candidates=tuple(design["candidates"]) if design.get("candidates") else None,
                          time_budget_seconds=design["time_budget_seconds"],
                          budget_steps=p["budget_steps"], budget_seconds=p["budget_seconds"],
                          arms=tuple(resolved.get("arms") or p["arms"]), margin=resolved["margin"],
                          lr_grid=tuple(p["lr_grid"]) if p.get("lr_grid") else None, batch_size=p["batch_size"],
                          linear_evidence=bool(p.get("linear_evidence", False)), halving=p.get("halving"))
    layers = req["layers"]
    agg = resolved.get("aggregation") or _legacy_aggregation(req)
    return Plan(
        job_id=job.id, project_id=job.project_id, dataset_id=dataset.id, dataset_prefix=dataset.artifact_key,
        dataset_digest=dataset.digest, modality=dataset.modality, task_type=dataset.task_type,
        backbones=tuple(resolved["backbones"]), layers=tuple(layers) if isinstance(layers, list) else layers,
        layer_mode=agg["layer_mode"], metrics=computed_metrics(resolved["metrics"]),
        similarity=_similarity(resolved, req, dataset.task_type),
        requested_metrics=tuple(resolved["metrics"]),
        aggregation=req["aggregation"], reference_backbone=resolved.get("reference_backbone"),
        resolved_aggregation=agg,
        bootstrap=req["bootstrap"], subset_size=req["subset_size"], max_samples=req.get("max_samples"),
        seed=req["seed"], probe=probe, request=req,
    )


def resolve_similarity(requested: bool | list[str], task_type: str, modality: str) -> list[str]:
    """The domain distances a new job computes, frozen into its request: the task type's defaults for
    ``true``, none for ``false``, the named ones for a list (each a similarity metric of the task type)."""
    from app.transferability import METRICS, check_capability, similarity_metrics

    if requested is False:
        return []
    if requested is True:
        return [] if modality == Modality.features else list(similarity_metrics(task_type))
    if modality == Modality.features:
        raise InvalidInput("similarity: a precomputed-features target has no source sample to compare with; "
                           "send true or false")
    known = sorted(n for n, spec in METRICS.items() if spec.kind == "similarity")
    for name in requested:
        if name not in METRICS or METRICS[name].kind != "similarity":
            raise InvalidInput(f"similarity: {name!r} is not a domain distance; known: {known}")
        try:
            check_capability(name, task_type)
        except ValueError as exc:
            raise InvalidInput(f"similarity: {exc}") from exc
    return list(requested)


def _similarity(resolved: dict[str, Any], req: dict[str, Any], task_type: str) -> tuple[str, ...]:
    """The distances frozen at creation; for a job stored before they were, the defaults its ``true`` meant."""
    from app.transferability import similarity_metrics

    if "similarity" in resolved:
        return tuple(resolved["similarity"])
    return similarity_metrics(task_type) if req.get("similarity", True) else ()


def computed_metrics(names: Any) -> tuple[str, ...]:
    """The registry metrics behind requested names: a metric itself, a pool-level score's parts."""
    from app.transferability import POOL_SCORES

    out = [part for name in names for part in (POOL_SCORES[name].parts if name in POOL_SCORES else (name,))]
    return tuple(dict.fromkeys(out))


def _legacy_aggregation(req: dict[str, Any]) -> dict[str, Any]:
    """The aggregation of a job stored before it was frozen in ``resolved``: what the request said then."""
    weights = req.get("aggregation") if isinstance(req.get("aggregation"), dict) else None
    return {"method": "weighted" if weights else "rank_mean", "weights": weights, "ranker": None,
            "layer_mode": req.get("layer_mode") or "best", "layer_rule": None, "note": None}


def scoring_rows(labels: np.ndarray, max_samples: int | None, seed: int) -> np.ndarray:
    """Positions (within the train split) scored by the metrics: all of them, or a stratified subsample
    of ``max_samples`` that is the same every time for the same seed."""
    n = labels.shape[0]
    if max_samples is None or max_samples >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
        keep = []
        classes, counts = np.unique(labels, return_counts=True)
        quota = np.maximum(2, np.floor(counts / n * max_samples).astype(int))
        for c, q in zip(classes, quota, strict=True):
            members = np.flatnonzero(labels == c)
            keep.append(rng.choice(members, size=min(q, len(members)), replace=False))
        return np.sort(np.concatenate(keep))
    return np.sort(rng.choice(n, size=max_samples, replace=False))


def pick_layers(spec_layers: list[str], depths: list[float], requested: str | tuple[str, ...]) -> list[str]:
    """The cut points to embed: 'last', 'all', explicit names, or 'auto' (up to 4 evenly spaced by depth,
    always including the last)."""
    if isinstance(requested, tuple):
        return list(requested)
    if requested == "last":
        return [spec_layers[-1]]
    if requested == "all" or len(spec_layers) <= 4:
        return list(spec_layers)
    targets = np.linspace(min(depths), max(depths), 4)
    chosen = []
    for t in targets:
        i = int(np.argmin([abs(d - t) for d in depths]))
        if spec_layers[i] not in chosen:
            chosen.append(spec_layers[i])
    if spec_layers[-1] not in chosen:
        chosen.append(spec_layers[-1])
    return [ly for ly in spec_layers if ly in chosen]
