"""The app factory. Nothing is built at import time: ``create_app()`` wires settings, database,
artifact store and executor in a typed lifespan.

Run with ``tscout serve`` (or ``uvicorn --factory app.main:create_app``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute

from app import __version__
from app.api.errors import install_error_handlers
from app.api.guard import RequestGuard, method_table
from app.api.params import refuse_unknown_query
from app.api.routes import api_routers
from app.db.migrate import schema_problem
from app.execution import build_executor
from app.runtime import Runtime
from app.services import job_handlers
from app.settings import AuthMode, Settings, get_settings

log = logging.getLogger("tscout")

DESCRIPTION = """
Transfer Scout answers one question: *which of my pretrained source models should I start from, at which
layer, and will any of them hurt me?*

Upload a target dataset, start a ranking job over candidate backbones, and read back the ranked table:
transferability, domain-similarity and difficulty metrics per backbone and layer, a rank with a bootstrap
confidence interval, and — for probed candidates — a negative-transfer verdict from paired fine-tunes
against a same-architecture scratch baseline.

Every error answers `{"error": <code>, "detail": <message>}`. With `TSCOUT_AUTH=required`, send
`Authorization: Bearer <api key>` (create one with `tscout keys create --project NAME`).
"""

TAGS = [
    {"name": "health", "description": "Liveness and readiness probes."},
    {"name": "datasets", "description": "Target datasets: upload, validation, statistics, splits."},
    {
        "name": "backbones",
        "description": "Candidate source backbones: the built-in catalogue and registered ones.",
    },
    {"name": "rankings", "description": "Ranking jobs: embed → score → rank → probe → verdict."},
    {"name": "jobs", "description": "Status of any job."},
    {"name": "metrics", "description": "The metric catalogue and the task-type capability matrix."},
]


class SchemaNotAtHead(RuntimeError):
    pass


def _operation_id(route: APIRoute) -> str:
    return route.operation_id or f"{route.tags[0] if route.tags else 'default'}-{route.name}"


def _warn_keyless(runtime: Runtime, local_project: str) -> None:
    """At start with keys required: say which project holds data created with auth disabled (nobody sees it)."""
    from app.services.auth import keyless_hint

    try:
        with runtime.sessions() as session:
            hint = keyless_hint(session, local_project)
    except Exception as exc:  # an unreachable database answers 503 per request; the start goes on
        log.warning("could not check project %r for data created with auth disabled: %s", local_project,
                    type(exc).__name__)
        return
    if hint:
        log.warning("auth is required, and %s", hint)


def create_app(settings: Settings | None = None, *, start_executor: bool | None = None) -> FastAPI:
    """Build the application. ``settings`` defaults to :func:`get_settings` (environment)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime.from_settings(settings)
        problem = schema_problem(runtime.engine, settings.database_url)
        if problem is not None:
            runtime.close()
            raise SchemaNotAtHead(f"refusing to serve: {problem}")
        built_in = len(runtime.catalogue.builtins)  # read the cards now: a broken card fails the start, not a request
        log.info("catalogue: %d built-in backbones from %s", built_in, settings.models_dir)
        if settings.auth is AuthMode.required:
            _warn_keyless(runtime, settings.local_project)
        executor = build_executor(runtime, job_handlers())
        run_worker = settings.run_worker_in_api if start_executor is None else start_executor
        if run_worker:
            executor.start()
        app.state.runtime = runtime
        app.state.executor = executor
        # admission, request threads and the pool are sized together (app.api.deps.admit)
        app.state.admission = anyio.Semaphore(settings.api_max_concurrent_requests)
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        try:
            yield
        finally:
            executor.shutdown(wait=True)
            runtime.close()

    app = FastAPI(
        title="Transfer Scout",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        docs_url=None,  # served offline by app.api.routes.docs (assets from a package, never a CDN)
        redoc_url=None,
        openapi_url="/openapi.json",
        dependencies=[Depends(refuse_unknown_query)],
    )
    install_error_handlers(app)
    app.add_middleware(RequestGuard)
    routers = api_routers()
    for router in routers:
        app.include_router(router)
    app.state.route_methods = method_table([*app.router.routes, *(r for router in routers for r in router.routes)])
    return app
