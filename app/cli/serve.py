"""``tscout serve`` (the HTTP API, with the local executor inside it by default) and ``tscout worker`` (a
standalone worker running the executor named by TSCOUT_EXECUTOR: local threads, or units on Ray)."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Annotated

import typer

from app.cli.console import console, fail
from app.settings import AuthMode, get_settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default TSCOUT_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default TSCOUT_PORT)")] = None,
    upgrade_db: Annotated[bool, typer.Option("--upgrade-db", help="Upgrade the database first")] = False,
) -> None:
    """Start the HTTP API (and, by default, the local executor inside it)."""
    import uvicorn

    from app.db import migrate
    from app.main import create_app

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    if settings.auth is AuthMode.disabled and not _is_loopback(host):
        fail(f"TSCOUT_AUTH=disabled only listens on loopback, not {host!r}; set TSCOUT_AUTH=required")
    if upgrade_db:
        migrate.upgrade(settings.database_url)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    processes = settings.api_processes
    if processes == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
        return
    # several API processes: the executor runs in exactly one place, a `tscout worker` beside them
    worker_process = None
    if settings.run_worker_in_api:
        worker_process = subprocess.Popen([sys.executable, "-c", "from app.cli import main; main()", "worker"])
    os.environ["TSCOUT_RUN_WORKER_IN_API"] = "false"  # read by each API process's own get_settings()
    try:
        uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=processes, log_level="info")
    finally:
        if worker_process is not None:
            worker_process.terminate()
            worker_process.wait(timeout=60)


def worker() -> None:
    """Run a standalone worker with the executor TSCOUT_EXECUTOR names (local, or ray at TSCOUT_RAY_ADDRESS):
    it picks up PENDING jobs and re-queues jobs of dead workers."""
    from app.cli.gc import collect_garbage
    from app.db import migrate
    from app.execution import build_executor
    from app.runtime import Runtime
    from app.services import job_handlers

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    settings = get_settings()
    runtime = Runtime.from_settings(settings)
    problem = migrate.schema_problem(runtime.engine, settings.database_url)
    if problem:
        runtime.close()
        fail(problem)
    try:  # the orphan sweep runs once per worker start; a failing sweep must not keep jobs from running
        collect_garbage(runtime)
    except Exception:
        logging.getLogger("tscout.gc").exception("orphan sweep at worker start failed")
    executor = build_executor(runtime, job_handlers())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    executor.start()
    console.print(f"worker {executor.worker_id} ({settings.executor.value} executor) running; Ctrl-C to stop")
    stop.wait()
    executor.shutdown(wait=True)
    runtime.close()
