"""Creating and cancelling ranking jobs: validation against the catalogue and the metric capability
matrix, idempotency keys, and the frozen request the job's plan is read from. The hand-off to the executor
happens after commit, in the route (``app.db.session.after_commit``); nothing here submits work."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.tables import Dataset, Job
from app.db.upsert import insert_unless_exists
from app.enums import Modality, ProbeArm
from app.errors import Conflict, InvalidInput, NotFound, raises
from app.jobs.state import get_job, request_cancel
from app.jobs.status import JobStatus
from app.runtime import Runtime
from app.schemas.rankings import BackboneFilter, ProbeExtension, RankingCreate
from app.services.auth import Principal
from app.services.rankers import resolve_aggregation
from app.services.rankings.feature_sets import resolve_feature_sets
from app.services.rankings.plan import FEATURES_PREFIX, resolve_similarity
from app.settings import Settings

MAX_BACKBONES = 64


@dataclass(frozen=True)
class ResolvedRanking:
    """A validated request: the concrete backbone ids, metrics and options the job will run."""

    dataset: Dataset
    backbone_ids: list[str]
    metrics: list[str]
    reference_backbone: str | None
    aggregation: dict[str, Any]
    feature_sets: dict[str, dict[str, Any]] | None = None
    similarity: list[str] = field(default_factory=list)


def _request_digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _resolve_metrics(request: RankingCreate, task_type: str) -> list[str]:
    """The requested metric names: registry metrics and pool-level scores (``etran``, ``ncti``: combined
    across the job's backbones from per-model parts that the job computes)."""
    from app.transferability import METRICS, POOL_SCORES, check_capability, default_metrics

    names = list(request.metrics) if request.metrics else list(default_metrics(task_type))
    unknown = [m for m in names if m not in METRICS and m not in POOL_SCORES]
    if unknown:
        raise InvalidInput(f"metrics: unknown metric(s) {unknown}; known: {sorted(METRICS)}; pool-level scores: "
                           f"{sorted(POOL_SCORES)}")
    for name in names:
        for part in POOL_SCORES[name].parts if name in POOL_SCORES else (name,):
            try:
                check_capability(part, task_type)
            except ValueError as exc:
                raise InvalidInput(f"metrics: {name!r}: {exc}") from exc
        if name in METRICS and METRICS[name].kind not in ("transferability", "baseline"):
            raise InvalidInput(f"metrics: {name!r} is a {METRICS[name].kind} metric; similarity and difficulty "
                               "are computed with 'similarity' and for every ranking")
    if isinstance(request.aggregation, dict):
        extra = sorted(set(request.aggregation) - set(names))
        if extra:
            raise InvalidInput(f"aggregation: weights name metrics that are not computed: {extra}")
        if sum(request.aggregation.values()) <= 0:
            raise InvalidInput("aggregation: weights must have a positive sum")
    return names


def _spec(session: Session, principal: Principal, runtime: Runtime, backbone_id: str, field: str):
    from app.backbones.base import BackboneId
    from app.services.backbones import get_spec

    try:
        BackboneId.parse(backbone_id)
        return get_spec(session, principal.project_id, runtime.catalogue, backbone_id)[0]
    except NotFound:
        raise InvalidInput(f"{field}: backbone {backbone_id!r} is neither in the catalogue nor registered in "
                           "this project") from None
    except ValueError as exc:
        raise InvalidInput(f"{field}: {exc}") from None


def _find_specs(session: Session, principal: Principal, runtime: Runtime, flt: BackboneFilter, modality: str):
    from app.services.backbones import list_project_backbones

    rows, _ = list_project_backbones(session, principal.project_id, runtime.catalogue, family_name=flt.family,
                                     modality=modality, q=flt.q, limit=MAX_BACKBONES + 1)
    return [_spec(session, principal, runtime, row["id"], "backbones") for row in rows]


def _resolve_backbones(session: Session, principal: Principal, runtime: Runtime, request: RankingCreate,
                       dataset: Dataset) -> tuple[list[str], str | None]:
    if isinstance(request.backbones, list) and any(b.startswith(FEATURES_PREFIX) for b in request.backbones):
        raise InvalidInput(f"backbones: feature sets ('features:<dataset id>') are ranked for a precomputed-features "
                           f"target; dataset {dataset.id} is {dataset.modality}")
    if isinstance(request.backbones, list):
        specs = [_spec(session, principal, runtime, bid, "backbones") for bid in request.backbones]
    else:
        flt = request.backbones or BackboneFilter()
        specs = _find_specs(session, principal, runtime, flt, flt.modality or dataset.modality)
        if not specs:
            raise InvalidInput(f"backbones: no catalogue backbone matches {flt.model_dump(exclude_none=True)} "
                               f"for a {dataset.modality} dataset")
    wrong = [f"{s.id} ({s.modality})" for s in specs if s.modality != dataset.modality]
    if wrong:
        raise InvalidInput(f"backbones: {wrong} do not take {dataset.modality} input like dataset {dataset.id}")
    if len(specs) > MAX_BACKBONES:
        raise InvalidInput(f"backbones: {len(specs)} selected; at most {MAX_BACKBONES} per ranking")
    if isinstance(request.layers, list):
        for spec in specs:
            names = {layer.name for layer in spec.layers}
            missing = [ly for ly in request.layers if ly not in names]
            if missing:
                raise InvalidInput(f"layers: backbone {spec.id} has no layer(s) {missing}; it has {sorted(names)}")
    reference = None
    if request.reference_backbone is not None:
        ref = _spec(session, principal, runtime, request.reference_backbone, "reference_backbone")
        if ref.modality != dataset.modality:
            raise InvalidInput(f"reference_backbone: {ref.id} is {ref.modality}, the dataset is {dataset.modality}")
        reference = ref.id
    return [s.id for s in specs], reference


def validate_request(session: Session, principal: Principal, runtime: Runtime,
                     request: RankingCreate) -> ResolvedRanking:
    dataset = session.get(Dataset, request.dataset_id)
    if dataset is None or dataset.project_id != principal.project_id:
        raise InvalidInput(f"dataset_id: dataset {request.dataset_id} not found in this project")
    metrics = _resolve_metrics(request, dataset.task_type)
    metrics, aggregation = resolve_aggregation(request, dataset.task_type, runtime.settings, metrics)
    similarity = resolve_similarity(request.similarity, dataset.task_type, dataset.modality)
    if dataset.modality == Modality.features:
        backbone_ids, feature_sets = resolve_feature_sets(session, principal, runtime, request, dataset,
                                                          MAX_BACKBONES)
        return ResolvedRanking(dataset=dataset, backbone_ids=backbone_ids, metrics=metrics, reference_backbone=None,
                               aggregation=aggregation, feature_sets=feature_sets)
    backbone_ids, reference = _resolve_backbones(session, principal, runtime, request, dataset)
    if request.probe is not None and ProbeArm.reference in request.probe.arms and reference is None:
        raise InvalidInput("probe.arms: the 'reference' arm needs reference_backbone")
    if request.probe is not None and request.probe.candidates:
        outside = [c for c in request.probe.candidates if c not in backbone_ids]
        if outside:
            raise InvalidInput(f"probe.candidates: {outside} are not among the ranked backbones")
    return ResolvedRanking(dataset=dataset, backbone_ids=backbone_ids, metrics=metrics,
                           reference_backbone=reference, aggregation=aggregation, similarity=similarity)


def _design(request: RankingCreate, settings: Settings) -> dict[str, Any] | None:
    """The probe stage's seed design, frozen into the request: a fixed number of seeds in one round, or the
    sequential rounds (first round, round size, cap) and the stage's wall-clock budget."""
    probe = request.probe
    if probe is None:
        return None
    if probe.seeds is not None:
        first = round_size = cap = probe.seeds
    else:
        first = probe.first_round or min(settings.probe_first_round, probe.max_seeds or settings.probe_max_seeds)
        round_size = probe.round_size or settings.probe_round_size
        cap = probe.max_seeds or max(settings.probe_max_seeds, first)
    return {"first_round": first, "round_size": round_size, "max_seeds": cap, "fixed": probe.seeds is not None,
            "final_test_seeds": probe.final_test_seeds or cap, "candidates": probe.candidates,
            "time_budget_seconds": probe.time_budget_seconds or settings.probe_time_budget_seconds}


@raises(Conflict, InvalidInput)
def create_ranking(session: Session, principal: Principal, runtime: Runtime, request: RankingCreate,
                   idempotency_key: str | None = None, *, extends: uuid.UUID | None = None) -> tuple[Job, bool]:
    """Validate and store a PENDING ranking job. Returns (job, created); the caller commits, then submits.

    The same ``Idempotency-Key`` with the same body returns the existing job; with a different body, 409.
    """
    body = request.model_dump(mode="json")
    digest = _request_digest(body)
    if idempotency_key is not None:
        if not 1 <= len(idempotency_key) <= 200:
            raise InvalidInput("Idempotency-Key must be 1–200 characters")
        if session.scalar(select(Job.id).where(Job.project_id == principal.project_id,
                                               Job.idempotency_key == idempotency_key)) is not None:
            return _existing_for_key(session, principal, idempotency_key, digest), False
    settings: Settings = runtime.settings
    resolved = validate_request(session, principal, runtime, request)
    arms = None
    if request.probe is not None:
        arms = [a.value for a in request.probe.arms]
        if resolved.reference_backbone is not None and ProbeArm.reference.value not in arms:
            arms.append(ProbeArm.reference.value)  # naming a reference means: compare against it
    stored = dict(body, resolved={"backbones": resolved.backbone_ids, "metrics": resolved.metrics, "arms": arms,
                                  "aggregation": resolved.aggregation, "similarity": resolved.similarity,
                                  **({"extends": str(extends)} if extends is not None else {}),
                                  "reference_backbone": resolved.reference_backbone,
                                  **({"feature_sets": resolved.feature_sets} if resolved.feature_sets else {}),
                                  "design": _design(request, settings),
                                  "margin": (request.probe.margin if request.probe and request.probe.margin
                                             is not None else settings.probe_margin)})
    values = dict(id=uuid.uuid4(), project_id=principal.project_id, kind="ranking", dataset_id=resolved.dataset.id,
                  status=JobStatus.PENDING.value, request=stored, request_digest=digest,
                  idempotency_key=idempotency_key)
    if idempotency_key is None:
        job = Job(**values)
        session.add(job)
        session.flush()
        return job, True
    # concurrent retries with one key: exactly one INSERT wins; the others answer with the winner's job
    now = utcnow()
    defaults = dict(progress={}, result={}, attempts=0, cancel_requested=False, created_at=now, updated_at=now)
    if insert_unless_exists(session, Job, {**defaults, **values}, ["project_id", "idempotency_key"]):
        return session.get(Job, values["id"]), True
    return _existing_for_key(session, principal, idempotency_key, digest), False


def _existing_for_key(session: Session, principal: Principal, idempotency_key: str, digest: str) -> Job:
    existing = session.scalar(select(Job).where(Job.project_id == principal.project_id,
                                                Job.idempotency_key == idempotency_key))
    if existing is None:  # pragma: no cover - ON CONFLICT only skips when the row is there
        raise Conflict(f"Idempotency-Key {idempotency_key!r} is being used by a concurrent request; retry")
    if existing.request_digest != digest:
        raise Conflict(f"Idempotency-Key {idempotency_key!r} was used for a different request "
                       f"(job {existing.id})")
    return existing


@raises(NotFound, Conflict, InvalidInput)
def extend_probes(session: Session, principal: Principal, runtime: Runtime, job_id: uuid.UUID,
                  extension: ProbeExtension, idempotency_key: str | None = None) -> tuple[Job, bool]:
    """A new ranking job that asks the finished ``job_id``'s question again with more seeds (a higher cap)
    for chosen candidates. Every stored embedding and probe run is reused (content-addressed cache, probe
    reuse keys), so only the new seeds train; the design keeps the original fixed-n test where it was, so
    the error control of the first job still holds after the extension. Returns (job, created)."""
    from app.db.tables import VerdictRow

    parent = get_job(session, job_id, principal.project_id)
    if parent.kind != "ranking":
        raise NotFound(f"ranking {job_id} not found")
    if parent.status != JobStatus.SUCCEEDED.value:
        raise Conflict(f"ranking {job_id} is {parent.status}; only a finished (SUCCEEDED) ranking can be extended")
    body = {k: v for k, v in parent.request.items() if k != "resolved"}
    design = parent.request["resolved"].get("design")
    if not body.get("probe") or not design:
        raise Conflict(f"ranking {job_id} ran no probes; start a ranking with 'probe' instead")
    probed = [row.backbone_id for row in session.scalars(select(VerdictRow).where(VerdictRow.job_id == job_id))]
    candidates = list(extension.candidates or probed)
    unknown = [c for c in candidates if c not in parent.request["resolved"]["backbones"]]
    if unknown:
        raise InvalidInput(f"candidates: {unknown} were not ranked by job {job_id}")
    if extension.max_seeds < design["max_seeds"]:
        raise InvalidInput(f"max_seeds: {extension.max_seeds} is below the ranking's cap {design['max_seeds']}; "
                           "an extension only adds seeds")
    # the named candidates at the full budget: an extension adds seeds where successive halving stopped
    probe = {**body["probe"], "seeds": None, "halving": None, "first_round": design["first_round"],
             "round_size": design["round_size"], "max_seeds": extension.max_seeds, "candidates": candidates,
             "final_test_seeds": design.get("final_test_seeds") or design["max_seeds"],
             "time_budget_seconds": extension.time_budget_seconds or design["time_budget_seconds"]}
    return create_ranking(session, principal, runtime, RankingCreate(**{**body, "probe": probe}), idempotency_key,
                          extends=job_id)


@raises(NotFound, Conflict)
def cancel_ranking(session: Session, principal: Principal, job_id: uuid.UUID) -> Job:
    job = get_job(session, job_id, principal.project_id)
    if job.kind != "ranking":
        raise NotFound(f"ranking {job_id} not found")
    return request_cancel(session, job_id, principal.project_id)


def rank_upload(runtime, project: str, data: bytes, filename: str, body: dict[str, Any]) -> tuple[uuid.UUID, uuid.UUID]:
    """Ingest ``data`` as a dataset of ``project`` and store a PENDING ranking of it, in one transaction —
    for programmatic callers (benchmarks, tests) that do not go through HTTP. Returns (job id, project id);
    run the job with an executor or :func:`app.execution.run_job`."""
    import io

    from app.datasets.collected import IngestOptions
    from app.db.session import unit_of_work
    from app.services.auth import local_principal
    from app.services.datasets import create_dataset

    with unit_of_work(runtime.sessions) as session:
        principal = local_principal(session, project)
        dataset, _ = create_dataset(session, runtime.store, runtime.settings, principal.project_id,
                                    source=io.BytesIO(data), name=filename, options=IngestOptions(filename=filename))
        job, _ = create_ranking(session, principal, runtime, RankingCreate(dataset_id=dataset.id, **body))
        return job.id, principal.project_id
