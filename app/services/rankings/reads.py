"""Reading ranking jobs back: the ranked table of one job, lists with cursor pagination, and how one
source did across targets. Shapes rows into ``app.schemas.rankings`` models. The one write: the serialised
body of a finished job, stored the first time it is read (:func:`ranking_body`) — a terminal job never
changes, so later reads serve those bytes without rebuilding the table."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, load_only

from app.db.base import utcnow
from app.db.pagination import keyset, split_page
from app.db.tables import Dataset, Job, ProbeRun, Ranking, RankingSnapshot, VerdictRow
from app.db.upsert import insert_unless_exists
from app.errors import InvalidInput, NotFound, raises
from app.jobs.state import get_job
from app.jobs.status import JobStatus
from app.schemas.rankings import (
    AGGREGATE_SCALES,
    AggregationRead,
    ArmSummary,
    BackboneRankingPage,
    BackboneRankingRead,
    ProbeRunRead,
    Progress,
    RankingPage,
    RankingRead,
    RankingRow,
    RankingSummary,
    SubsetRead,
    VerdictRead,
)

PLOT_NAMES = ("ranking", "layers", "probes")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def stage_eta(job: Job) -> float | None:
    """Seconds the current stage still needs at its pace so far (``None`` before its first unit, or at the end)."""
    progress = job.progress or {}
    stage = (progress.get("stages") or {}).get(progress.get("stage") or "", {})
    done, total, started = stage.get("done", 0), stage.get("total", 0), stage.get("started_at")
    if not started or not done or not total or done >= total:
        return None
    elapsed = (datetime.fromisoformat(stage["updated_at"]) - datetime.fromisoformat(started)).total_seconds()
    return max(0.0, elapsed / done * (total - done))


def ranking_table(session: Session, job_id: uuid.UUID,
                  failed: dict[str, dict[str, str]] | None = None) -> list[RankingRow]:
    """The ranked rows, best first, then one ``status = "failed"`` row per candidate in ``failed``."""
    verdicts = {v.backbone_id: v for v in session.scalars(select(VerdictRow).where(VerdictRow.job_id == job_id))}
    rows = session.scalars(select(Ranking).where(Ranking.job_id == job_id).order_by(Ranking.rank,
                                                                                       Ranking.backbone_id))
    runs: dict[str, list[ProbeRun]] = {}
    for run in session.scalars(select(ProbeRun).where(ProbeRun.job_id == job_id)
                               .order_by(ProbeRun.backbone_id, ProbeRun.arm, ProbeRun.seed)):
        runs.setdefault(run.backbone_id, []).append(run)
    table = []
    for row in rows:
        details = row.details or {}
        verdict = verdicts.get(row.backbone_id)
        table.append(RankingRow(
            rank=row.rank, backbone_id=row.backbone_id, best_layer=row.best_layer, aggregate=row.aggregate,
            rank_ci=(row.rank_ci_low, row.rank_ci_high) if row.rank_ci_low is not None else None,
            p_top1=details.get("p_top1"), scores=row.scores or {}, layers=details.get("layers", {}),
            similarity=details.get("similarity", {}), difficulty=details.get("difficulty", {}),
            baselines=details.get("baselines", {}), flags=details.get("flags", []),
            verdict=_verdict(verdict, runs.get(row.backbone_id, [])) if verdict else None,
        ))
    for backbone_id, failure in sorted((failed or {}).items()):
        table.append(RankingRow(status="failed", backbone_id=backbone_id, error=failure.get("error"),
                                failed_stage=failure.get("stage")))
    return table


def verdict_rung(verdict: VerdictRow) -> int:
    """The ``probe_runs.rung_steps`` of the runs a verdict judged: 0 (the full budget) unless successive
    halving stopped the candidate at a short rung."""
    return int(((verdict.details or {}).get("halving") or {}).get("rung_steps") or 0)


def _verdict(row: VerdictRow, runs: list[ProbeRun]) -> VerdictRead:
    """The stored verdict with the facts of the probe runs it judged (those of its rung): per-arm means,
    learning rate, steps, time-outs."""
    rung = verdict_rung(row)
    read = [ProbeRunRead(arm=r.arm, seed=r.seed, rung_steps=r.rung_steps, metric=r.metric, metric_name=(r.details or {}).get("metric_name"),
                         scores=(r.details or {}).get("scores") or {}, lr=(r.details or {}).get("lr"),
                         steps=int((r.details or {}).get("total_steps") or r.steps or 0),
                         best_step=(r.details or {}).get("best_step"),
                         timed_out=bool((r.details or {}).get("timed_out")), seconds=float(r.seconds or 0.0),
                         shared_from=(r.details or {}).get("shared_from")) for r in runs if r.rung_steps == rung]
    arms: dict[str, ArmSummary] = {}
    for arm in dict.fromkeys(r.arm for r in read):
        mine = [r for r in read if r.arm == arm]
        values = [r.metric for r in mine if r.metric is not None]
        arms[arm] = ArmSummary(mean=sum(values) / len(values) if values else None, n=len(mine),
                               timed_out=sum(r.timed_out for r in mine))
    return VerdictRead.model_validate(row).model_copy(update={"arms": arms, "runs": read})


def _aggregation(result: dict) -> AggregationRead | None:
    method = result.get("aggregation")
    if not method:
        return None
    return AggregationRead(method=method, metrics=list(result.get("metrics_in_aggregate") or []),
                           weights=result.get("aggregate_weights"), ranker=result.get("ranker"),
                           note=result.get("aggregation_note"),
                           scale=AGGREGATE_SCALES.get(method, f"see the {method!r} aggregation's documentation"))


def planned_work(session: Session, job: Job) -> dict[str, Any] | None:
    """Units per stage a ranking job plans, and an estimate of its probe time from this project's stored
    probe runs (median seconds per run × units). ``None`` for jobs stored before the plan was recorded."""
    resolved = (job.request or {}).get("resolved") or {}
    if "backbones" not in resolved:
        return None
    n = len(resolved["backbones"])
    out: dict[str, Any] = {"units": {"embed": n, "score": n}}
    design, probe = resolved.get("design"), (job.request or {}).get("probe")
    if design and probe:
        candidates = len(design.get("candidates") or []) or min(
            n, probe["top_k"] + (probe.get("max_suspicious", 0) if probe.get("include_suspicious") else 0))
        arms = len(resolved.get("arms") or probe["arms"])
        schedule = [(probe["budget_steps"], candidates)]
        if probe.get("halving"):
            from app.probes.budget import ProbeBudget
            from app.probes.halving import rung_schedule

            h = probe["halving"]
            schedule = rung_schedule(candidates, probe["budget_steps"], eta=h["eta"], final_candidates=h["finalists"],
                                     min_steps=h.get("min_steps") or ProbeBudget().eval_every)
            out["units"]["probe_rungs"] = [{"steps": s, "candidates": c} for s, c in schedule]
        # short rungs: one first round of finetune + scratch each; the last rung: every arm, in rounds
        short = [(s, c * 2 * design["first_round"]) for s, c in schedule[:-1]]
        finalists = schedule[-1][1]
        first = sum(u for _, u in short) + finalists * arms * design["first_round"]
        most = sum(u for _, u in short) + finalists * arms * design["max_seeds"]
        out["units"].update(probe_candidates=candidates, probe_first_round=first, probe_at_most=most)
        full_budget_units = sum(u * s / probe["budget_steps"] for s, u in short)  # a short run costs its steps
        recent = select(ProbeRun.seconds).join(Job, Job.id == ProbeRun.job_id).where(
            Job.project_id == job.project_id, ProbeRun.metric.is_not(None)).order_by(
            ProbeRun.created_at.desc()).limit(200)
        seconds = sorted(s for s in session.scalars(recent) if s is not None)
        if seconds:
            per = seconds[len(seconds) // 2]
            short_units = sum(u for _, u in short)
            out["estimated_seconds"] = {"probe_first_round": round(per * (first - short_units + full_budget_units), 1),
                                        "probe_at_most": round(per * (most - short_units + full_budget_units), 1),
                                        "basis": f"median {per:.2f} s over this project's last {len(seconds)} "
                                                 "probe runs (stored runs a job reuses cost nothing)"}
    return out


@raises(NotFound)
def read_ranking(session: Session, job_id: uuid.UUID, project_id: uuid.UUID) -> RankingRead:
    job = get_job(session, job_id, project_id)
    result = job.result or {}
    progress = dict(job.progress or {})
    return RankingRead(
        id=job.id, status=JobStatus(job.status), dataset_id=job.dataset_id, request=job.request,
        progress=Progress(stage=progress.get("stage"), done=progress.get("done", 0),
                          total=progress.get("total", 0), eta_seconds=stage_eta(job),
                          stages=progress.get("stages", {})),
        error=job.error, created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
        table=ranking_table(session, job.id, result.get("failed_backbones")),
        subset=SubsetRead(**result["subset"]) if result.get("subset") else None,
        aggregation=_aggregation(result),
        target_difficulty=result.get("target_difficulty"), warnings=result.get("warnings", []),
        plots=[f"/v1/rankings/{job.id}/plots/{name}" for name in PLOT_NAMES],
        planned=planned_work(session, job),
    )


@raises(NotFound)
def ranking_body(session: Session, job_id: uuid.UUID, project_id: uuid.UUID) -> bytes:
    """The JSON body of :func:`read_ranking` for ``job_id``: a finished job's stored snapshot (one indexed
    read), or built from rows — and stored, once the job is terminal."""
    stored = session.execute(
        select(RankingSnapshot.body).join(Job, Job.id == RankingSnapshot.job_id)
        .where(RankingSnapshot.job_id == job_id, Job.project_id == project_id)
    ).scalar_one_or_none()
    if stored is not None:
        return stored.encode()
    ranking = read_ranking(session, job_id, project_id)
    body = ranking.model_dump_json()
    if ranking.status.is_terminal():
        insert_unless_exists(session, RankingSnapshot, {"job_id": job_id, "body": body, "created_at": utcnow()},
                             ["job_id"])
    return body.encode()


@raises(InvalidInput)
def list_rankings(
    session: Session,
    project_id: uuid.UUID,
    *,
    dataset_id: uuid.UUID | None = None,
    backbone_id: str | None = None,
    status: JobStatus | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    sort: str = "-created_at",
    limit: int = 50,
    cursor: str | None = None,
) -> RankingPage:
    if sort not in ("created_at", "-created_at"):
        raise InvalidInput(f"sort must be 'created_at' or '-created_at', got {sort!r}")
    conditions = [Job.project_id == project_id, Job.kind == "ranking"]
    if dataset_id is not None:
        conditions.append(Job.dataset_id == dataset_id)
    if status is not None:
        conditions.append(Job.status == status.value)
    # a time without a timezone is UTC here as in the API (app.api.params), never an error of the column type
    if created_after is not None:
        conditions.append(Job.created_at >= _utc(created_after))
    if created_before is not None:
        conditions.append(Job.created_at < _utc(created_before))
    if backbone_id is not None:
        conditions.append(Job.id.in_(select(Ranking.job_id).where(Ranking.backbone_id == backbone_id)))
    total = session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
    # a summary reads a few columns: never the jobs' request/result JSON nor the rankings' scores and details
    summary_columns = load_only(Job.id, Job.status, Job.dataset_id, Job.created_at, Job.finished_at, Job.stage)
    query = keyset(select(Job).options(summary_columns).where(*conditions), Job, cursor,
                   descending=sort.startswith("-"), limit=limit)
    jobs, next_cursor = split_page(list(session.scalars(query)), limit)
    tops = {}
    members: dict[uuid.UUID, list[str]] = {}
    if jobs:
        for job_id, backbone in session.execute(select(Ranking.job_id, Ranking.backbone_id)
                                                .where(Ranking.job_id.in_([j.id for j in jobs]))
                                                .order_by(Ranking.rank)):
            members.setdefault(job_id, []).append(backbone)
            tops.setdefault(job_id, backbone)
    items = [RankingSummary(id=j.id, status=JobStatus(j.status), dataset_id=j.dataset_id, created_at=j.created_at,
                            finished_at=j.finished_at, stage=j.stage, top_backbone=tops.get(j.id),
                            backbones=members.get(j.id, [])) for j in jobs]
    return RankingPage(items=items, total=total, next_cursor=next_cursor)


@raises(NotFound, InvalidInput)
def dataset_rankings(session: Session, project_id: uuid.UUID, dataset_id: uuid.UUID, *, limit: int = 50,
                     cursor: str | None = None) -> RankingPage:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or dataset.project_id != project_id:
        raise NotFound(f"dataset {dataset_id} not found")
    return list_rankings(session, project_id, dataset_id=dataset_id, limit=limit, cursor=cursor)


def backbone_history(session: Session, project_id: uuid.UUID, backbone_id: str, *,
                     limit: int = 100) -> BackboneRankingPage:
    """Every finished job of this project that ranked ``backbone_id``: where it placed, out of how many."""
    counts = (select(Ranking.job_id, func.count().label("n")).group_by(Ranking.job_id).subquery())
    query = (select(Ranking, Job, counts.c.n, VerdictRow.verdict)
             .join(Job, Job.id == Ranking.job_id)
             .join(counts, counts.c.job_id == Ranking.job_id)
             .outerjoin(VerdictRow, and_(VerdictRow.job_id == Ranking.job_id,
                                         VerdictRow.backbone_id == Ranking.backbone_id))
             .where(Job.project_id == project_id, Ranking.backbone_id == backbone_id)
             .order_by(Job.created_at.desc()))
    total = session.scalar(select(func.count()).select_from(Ranking).join(Job, Job.id == Ranking.job_id)
                           .where(Job.project_id == project_id, Ranking.backbone_id == backbone_id)) or 0
    items = [BackboneRankingRead(job_id=job.id, dataset_id=job.dataset_id, rank=row.rank, of=n,
                                 best_layer=row.best_layer, aggregate=row.aggregate, verdict=verdict,
                                 created_at=job.created_at)
             for row, job, n, verdict in session.execute(query.limit(limit))]
    return BackboneRankingPage(items=items, total=total)
