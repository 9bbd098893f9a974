"""``tscout db``: the database schema (Alembic) named by TSCOUT_DATABASE_URL."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.console import console
from app.settings import get_settings

db_cli = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)


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
