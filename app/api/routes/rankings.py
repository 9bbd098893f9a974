"""Ranking jobs: submit, follow (polling or server-sent events), read the table, plots, cancel."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from app.api.deps import ExecutorDep, PrincipalDep, RuntimeDep, SessionDep
from app.api.errors import responses_for
from app.api.params import CreatedAfter, CreatedBefore, Cursor, json_body
from app.db.session import after_commit
from app.errors import NotFound
from app.jobs.state import get_job
from app.jobs.status import JobStatus
from app.plots import PLOT_FORMATS
from app.schemas.rankings import BackboneRankingPage, ProbeExtension, RankingCreate, RankingPage, RankingRead
from app.services import rankings
from app.services.rankings.reads import PLOT_NAMES, stage_eta

router = APIRouter(tags=["rankings"])

PlotName = Literal[tuple(f"{n}{ext}" for n in PLOT_NAMES for ext in ("", *(f".{f}" for f in sorted(PLOT_FORMATS))))]
PlotFormat = Literal[tuple(sorted(PLOT_FORMATS))]


@router.post("/v1/rankings", operation_id="rankings-create", status_code=202,
             summary="Start a ranking job (answers at once; the work runs on the executor)",
             responses=responses_for(rankings.create_ranking, rankings.read_ranking, body=True))
def create_ranking(body: RankingCreate, response: Response, session: SessionDep, principal: PrincipalDep,
                   runtime: RuntimeDep, executor: ExecutorDep,
                   idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None) -> RankingRead:
    job, created = rankings.create_ranking(session, principal, runtime, body, idempotency_key)
    if created:
        job_id = job.id
        after_commit(session, lambda: executor.submit(job_id))
    response.headers["Location"] = f"/v1/rankings/{job.id}"
    return rankings.read_ranking(session, job.id, principal.project_id)


@router.get("/v1/rankings", operation_id="rankings-list", summary="List ranking jobs (cursor pagination)",
            response_model=RankingPage, responses=responses_for(rankings.list_rankings))
def list_rankings(
    session: SessionDep, principal: PrincipalDep,
    dataset_id: uuid.UUID | None = None,
    backbone: Annotated[str | None, Query(description="Only jobs that ranked this backbone id")] = None,
    status: JobStatus | None = None,
    created_after: CreatedAfter = None,
    created_before: CreatedBefore = None,
    sort: Annotated[str, Query(pattern="^-?created_at$")] = "-created_at",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> Response:
    return json_body(rankings.list_rankings(session, principal.project_id, dataset_id=dataset_id,
                                            backbone_id=backbone, status=status, created_after=created_after,
                                            created_before=created_before, sort=sort, limit=limit, cursor=cursor))


@router.get("/v1/rankings/{job_id}", operation_id="rankings-get", response_model=RankingRead,
            summary="Status, progress and the ranked table", responses=responses_for(rankings.ranking_body))
def get_ranking(job_id: uuid.UUID, session: SessionDep, principal: PrincipalDep) -> Response:
    # a finished job's body is stored serialised: served as bytes, not rebuilt and re-validated per read
    return Response(rankings.ranking_body(session, job_id, principal.project_id), media_type="application/json")


@router.post("/v1/rankings/{job_id}/cancel", operation_id="rankings-cancel", status_code=202,
             summary="Stop at the next unit of work (partial results are kept)",
             responses=responses_for(rankings.cancel_ranking, rankings.read_ranking))
def cancel_ranking(job_id: uuid.UUID, session: SessionDep, principal: PrincipalDep,
                   executor: ExecutorDep) -> RankingRead:
    rankings.cancel_ranking(session, principal, job_id)
    after_commit(session, lambda: executor.cancel(job_id))
    return rankings.read_ranking(session, job_id, principal.project_id)


@router.post("/v1/rankings/{job_id}/probes", operation_id="rankings-extend-probes", status_code=202,
             summary="Extend a finished ranking's verdicts: more seeds for chosen candidates (a new job that reuses "
                     "every stored run)",
             responses=responses_for(rankings.extend_probes, rankings.read_ranking, body=True))
def extend_probes(job_id: uuid.UUID, body: ProbeExtension, response: Response, session: SessionDep,
                  principal: PrincipalDep, runtime: RuntimeDep, executor: ExecutorDep,
                  idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None) -> RankingRead:
    job, created = rankings.extend_probes(session, principal, runtime, job_id, body, idempotency_key)
    if created:
        new_id = job.id
        after_commit(session, lambda: executor.submit(new_id))
    response.headers["Location"] = f"/v1/rankings/{job.id}"
    return rankings.read_ranking(session, job.id, principal.project_id)


@router.get("/v1/rankings/{job_id}/plots/{name}", operation_id="rankings-plot",
            summary="A plot: ranking, layers or probes (PNG or SVG)",
            responses={200: {"content": {"image/png": {}, "image/svg+xml": {}}}, **responses_for(rankings.render_plot)})
def get_plot(job_id: uuid.UUID,
             name: Annotated[PlotName, Path(description="ranking, layers or probes, optionally with .png/.svg")],
             session: SessionDep, principal: PrincipalDep,
             format: Annotated[PlotFormat | None, Query(description="png (default) or svg")] = None) -> Response:
    data, media_type = rankings.render_plot(session, principal.project_id, job_id, name, format)
    return Response(content=data, media_type=media_type)


@router.get("/v1/rankings/{job_id}/events", operation_id="rankings-events",
            summary="Server-sent events: progress while the job runs, then its final status",
            responses={200: {"content": {"text/event-stream": {}}}, **responses_for(get_job)})
def ranking_events(job_id: uuid.UUID, request: Request, session: SessionDep, principal: PrincipalDep,
                   runtime: RuntimeDep,
                   interval: Annotated[float, Query(gt=0.05, le=30)] = 0.5) -> StreamingResponse:
    get_job(session, job_id, principal.project_id)  # 404 before the stream starts

    def snapshot() -> dict:
        with runtime.sessions() as s:
            job = get_job(s, job_id)
            eta = stage_eta(job)
            return {"status": job.status, "stage": job.stage, "progress": job.progress, "error": job.error,
                    "eta_seconds": None if eta is None else round(eta, 1)}

    async def stream() -> AsyncIterator[str]:
        last = None
        event_id = 0
        while True:
            state = await asyncio.to_thread(snapshot)
            if state != last:
                event_id += 1
                kind = "status" if JobStatus(state["status"]).is_terminal() else "progress"
                yield f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(state, default=str)}\n\n"
                last = state
            if JobStatus(state["status"]).is_terminal() or await request.is_disconnected():
                return
            await asyncio.sleep(interval)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/v1/datasets/{dataset_id}/rankings", operation_id="rankings-by-dataset",
            summary="Ranking jobs of one dataset", response_model=RankingPage,
            responses=responses_for(rankings.dataset_rankings))
def rankings_of_dataset(dataset_id: uuid.UUID, session: SessionDep, principal: PrincipalDep,
                        limit: Annotated[int, Query(ge=1, le=200)] = 50, cursor: Cursor = None) -> Response:
    return json_body(rankings.dataset_rankings(session, principal.project_id, dataset_id, limit=limit,
                                               cursor=cursor))


@router.get("/v1/backbones/{backbone_id:path}/rankings", operation_id="rankings-by-backbone",
            summary="How one source did across this project's targets",
            responses=responses_for(rankings.backbone_history, extra=(NotFound,)))  # an id no route can match
def rankings_of_backbone(backbone_id: str, session: SessionDep, principal: PrincipalDep,
                         limit: Annotated[int, Query(ge=1, le=500)] = 100) -> BackboneRankingPage:
    return rankings.backbone_history(session, principal.project_id, backbone_id, limit=limit)
