"""``tscout rankings``: one ranking job on a running server — ``show`` (optionally waiting for it) and
``export`` (CSV, JSON, or a self-contained HTML report), through :mod:`app.client`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.console import err, fail

rankings_cli = typer.Typer(help="Read and export ranking jobs.", no_args_is_help=True)

Url = Annotated[str | None, typer.Option(help="Server URL (default TSCOUT_API_URL)")]
Key = Annotated[str | None, typer.Option(help="API key (default TSCOUT_API_KEY)")]


@rankings_cli.command("show")
def show(
    job_id: Annotated[str, typer.Argument(help="The ranking job id")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the job until it ends")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job as JSON")] = False,
    url: Url = None, key: Key = None,
) -> None:
    """Print a ranking job's table (following it to the end with --wait)."""
    from app.cli.rank import follow, print_job
    from app.client import Client, ScoutError

    try:
        with Client(url, key) as client:
            job = follow(client, job_id, quiet=as_json) if wait else client.ranking(job_id)
    except (ScoutError, ValueError) as exc:
        fail(str(exc))
    print_job(job, as_json)


@rankings_cli.command("extend")
def extend(
    job_id: Annotated[str, typer.Argument(help="A finished ranking job with probes")],
    max_seeds: Annotated[int, typer.Option("--max-seeds", help="The new cap on paired seeds per candidate")],
    candidate: Annotated[list[str] | None, typer.Option("--candidate", help="Probe this backbone further; "
                                                        "repeatable (default: every probed one)")] = None,
    time_budget: Annotated[float | None, typer.Option("--time-budget", help="Seconds for the probe stage")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the new job until it ends")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job as JSON")] = False,
    url: Url = None, key: Key = None,
) -> None:
    """Extend a finished ranking's verdicts with more seeds (a new job that reuses every stored run)."""
    import uuid

    from app.cli.rank import follow, print_job
    from app.client import Client, ScoutError

    try:
        with Client(url, key) as client:
            job = client.extend_probes(job_id, max_seeds=max_seeds, candidates=candidate or None,
                                       time_budget_seconds=time_budget, idempotency_key=f"extend-{uuid.uuid4()}")
            err.print(f"ranking {job.id} extends {job_id}; follow it with: tscout rankings show {job.id} --wait")
            if wait:
                job = follow(client, str(job.id), quiet=as_json)
    except (ScoutError, ValueError) as exc:
        fail(str(exc))
    print_job(job, as_json)


@rankings_cli.command("export")
def export(
    job_id: Annotated[str, typer.Argument(help="The ranking job id")],
    fmt: Annotated[str, typer.Option("--format", help="csv | json | html (table, ranking plot, verdicts)")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout")] = None,
    url: Url = None, key: Key = None,
) -> None:
    """Export a ranking as CSV, JSON or one self-contained HTML page."""
    from app.client import EXPORT_FORMATS, Client, ScoutError

    if fmt not in EXPORT_FORMATS:
        fail(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    try:
        with Client(url, key) as client:
            text = client.export(job_id, fmt)
    except (ScoutError, ValueError) as exc:
        fail(str(exc))
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output} ({len(text.encode())} bytes, {fmt})")
