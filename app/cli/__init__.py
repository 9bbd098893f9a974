"""``tscout``, the command line: one module per command group, registered explicitly below.

``serve``  serve (the API) and worker (a standalone executor)      ``db``    schema upgrade/downgrade/current
``keys``   API keys                                                 ``rank``  rank a dataset on a running server
``zoo``    build the built-in source zoo                            ``demo``  the whole zoo on the bundled target
``gc``     remove orphan artifacts (no row, older than the grace period)
``rankings`` show / export one ranking job (CSV, JSON, HTML)
``ranker``  show / refit the fitted default ranking

Commands import their heavy dependencies inside the command, so ``tscout --help`` stays fast.
"""

from __future__ import annotations

import typer

from app.cli.db import db_cli
from app.cli.demo import demo
from app.cli.gc import gc
from app.cli.keys import keys_cli
from app.cli.rank import rank
from app.cli.ranker import ranker_cli
from app.cli.rankings import rankings_cli
from app.cli.serve import serve, worker
from app.cli.zoo import zoo_cli


def build_cli() -> typer.Typer:
    """The ``tscout`` app with every command group attached (each command group adds one line here)."""
    cli = typer.Typer(name="tscout", help="Transfer Scout: rank pretrained sources for a target dataset.",
                      no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    cli.command("serve")(serve)
    cli.command("worker")(worker)
    cli.add_typer(db_cli, name="db")
    cli.add_typer(keys_cli, name="keys")
    cli.command("rank")(rank)
    cli.add_typer(rankings_cli, name="rankings")
    cli.add_typer(ranker_cli, name="ranker")
    cli.command("demo")(demo)
    cli.add_typer(zoo_cli, name="zoo")
    cli.command("gc")(gc)
    return cli


def main() -> None:
    """Run ``tscout``; a configuration error (an invalid ``TSCOUT_*`` setting) is one line, never a traceback."""
    from pydantic import ValidationError

    try:
        build_cli()()
    except ValidationError as exc:
        from app.cli.console import fail

        problems = "; ".join(
            (f"{'.'.join(str(p) for p in e['loc'])}: " if e.get("loc") else "") + e["msg"].removeprefix("Value error, ")
            for e in exc.errors())
        try:
            fail(f"configuration: {problems}")
        except typer.Exit as done:
            raise SystemExit(done.exit_code) from None


__all__ = ["build_cli", "main"]
