"""Explicit registration of feature sub-commands onto the ``tscout`` CLI (rank, zoo, bench, …)."""

from __future__ import annotations

import typer


def register(cli: typer.Typer) -> None:
    """Attach feature commands. Each feature adds one line here."""
    from app.cli_rank import rank
    from app.cli_zoo import zoo_cli
    from app.demo import demo

    cli.command("rank")(rank)
    cli.command("demo")(demo)
    cli.add_typer(zoo_cli, name="zoo")
