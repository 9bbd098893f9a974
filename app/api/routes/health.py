"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from app.api.deps import RuntimeDep
from app.db.migrate import schema_problem

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


@router.get("/healthz", operation_id="health-live", summary="Liveness: the process answers")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    operation_id="health-ready",
    summary="Readiness: database reachable, schema at head, artifact store writable",
    responses={503: {"model": Health, "description": "A dependency is not ready"}},
)
def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
        problem = schema_problem(runtime.engine, runtime.settings.database_url)
        checks["migrations"] = problem or "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["migrations"] = "unknown"
    try:
        runtime.store.check_writable()
        checks["artifacts"] = "ok"
    except Exception as exc:
        # the type only: the message of an OS error names server paths, and this route is public
        checks["artifacts"] = f"not writable: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        Health(status="ok" if ok else "not_ready", checks=checks).model_dump(), status_code=200 if ok else 503
    )
