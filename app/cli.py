"""``tscout``: serve the API, run a standalone worker, manage the database and API keys.

Sub-commands added by later features register themselves in :func:`build_cli` explicitly.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from typing import Annotated

import typer
from rich.console import Console

from app.settings import AuthMode, get_settings

console = Console()
err_console = Console(stderr=True)

cli = typer.Typer(
    name="tscout",
    help="Transfer Scout: rank pretrained sources for a target dataset.",
    no_args_is_help=True,
    add_completion=False,
)
db_cli = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
keys_cli = typer.Typer(help="API keys.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(keys_cli, name="keys")


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=1)


@db_cli.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Upgrade the database named by TSCOUT_DATABASE_URL to REVISION (default: head)."""
    from app.db import migrate

    url = get_settings().database_url
    migrate.upgrade(url, revision)
    console.print(f"database at [bold]{migrate.head_revision(url) if revision == 'head' else revision}[/]")


@db_cli.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base")]) -> None:
    """Downgrade the database to REVISION."""
    from app.db import migrate

    migrate.downgrade(get_settings().database_url, revision)
    console.print(f"database downgraded to {revision}")


@db_cli.command("current")
def db_current() -> None:
    """Print the database's revision and the code's head."""
    from app.db import migrate
    from app.db.session import make_engine

    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        console.print(
            f"current: {migrate.current_revision(engine)}  head: {migrate.head_revision(settings.database_url)}"
        )
    finally:
        engine.dispose()


@keys_cli.command("create")
def keys_create(
    project: Annotated[str, typer.Option("--project", help="Project the key belongs to (created if new)")],
    name: Annotated[str, typer.Option(help="A label for the key")] = "",
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    from app.db.session import make_engine, make_sessionmaker, unit_of_work
    from app.services.auth import create_key

    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            row, plaintext = create_key(session, project, pepper=settings.key_pepper, name=name)
            prefix = row.prefix
    finally:
        engine.dispose()
    err_console.print(f"key {prefix}… for project {project!r} (shown once, store it now):")
    console.print(plaintext)


@keys_cli.command("revoke")
def keys_revoke(prefix: Annotated[str, typer.Argument(help="The key's first 12 characters")]) -> None:
    """Revoke every key with this prefix."""
    from app.db.session import make_engine, make_sessionmaker, unit_of_work
    from app.services.auth import revoke_key

    engine = make_engine(get_settings().database_url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            n = revoke_key(session, prefix)
    finally:
        engine.dispose()
    console.print(f"revoked {n} key(s)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@cli.command("serve")
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
        _fail(f"TSCOUT_AUTH=disabled only listens on loopback, not {host!r}; set TSCOUT_AUTH=required")
    if upgrade_db:
        migrate.upgrade(settings.database_url)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@cli.command("worker")
def worker() -> None:
    """Run a standalone local worker: picks up PENDING jobs and re-queues jobs of dead workers."""
    from app.db import migrate
    from app.execution.local import LocalExecutor
    from app.runtime import Runtime

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    runtime = Runtime.from_settings(settings)
    problem = migrate.schema_problem(runtime.engine, settings.database_url)
    if problem:
        _fail(problem)
    executor = LocalExecutor(runtime)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    executor.start()
    console.print(f"worker {executor.worker_id} running; Ctrl-C to stop")
    stop.wait()
    executor.shutdown(wait=True)
    runtime.close()


def build_cli() -> typer.Typer:
    """The CLI with every feature's commands attached."""
    from app import cli_features

    cli_features.register(cli)
    return cli


def main() -> None:
    build_cli()()


if __name__ == "__main__":
    main()
