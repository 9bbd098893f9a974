"""``tscout keys``: API keys (shown once, stored only as a peppered hash)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.console import console, err
from app.settings import get_settings

keys_cli = typer.Typer(help="API keys.", no_args_is_help=True)


@keys_cli.command("create")
def keys_create(
    project: Annotated[str, typer.Option("--project", help="Project the key belongs to (created if new)")],
    name: Annotated[str, typer.Option(help="A label for the key")] = "",
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    from app.db.session import make_engine, make_sessionmaker, unit_of_work
    from app.services.auth import create_key, keyless_hint

    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            row, plaintext = create_key(session, project, pepper=settings.key_pepper, name=name)
            prefix = row.prefix
            hint = keyless_hint(session, settings.local_project) if project != settings.local_project else None
    finally:
        engine.dispose()
    err.print(f"key {prefix}… for project {project!r} (shown once, store it now):")
    console.print(plaintext)
    if hint:
        err.print(f"[yellow]note:[/] {hint}", soft_wrap=True)


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
