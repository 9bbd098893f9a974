"""``tscout rank``: a client of a running server. Uploads a dataset file when given one, starts a ranking,
follows it with a live progress bar per stage (server-sent events), and prints the ranked table."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.cli.console import console, err
from app.settings import get_settings


class ApiError(Exception):
    pass


def _client(url: str | None, key: str | None) -> httpx.Client:
    settings = get_settings()
    key = key or settings.api_key
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url or settings.api_url, headers=headers, timeout=httpx.Timeout(60, read=600))


def _check(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            body = response.json()
            message = f"{body.get('error')}: {body.get('detail')}"
        except ValueError:
            message = response.text[:500]
        raise ApiError(f"HTTP {response.status_code} from {response.request.url.path}: {message}")
    return response.json()


def upload_dataset(client: httpx.Client, path: Path, task_type: str | None) -> str:
    data = {"name": path.name}
    if task_type:
        data["task_type"] = task_type
    with open(path, "rb") as fh:
        body = _check(client.post("/v1/datasets", files={"file": (path.name, fh)}, data=data))
    return body["id"]


def follow(client: httpx.Client, job_id: str, *, quiet: bool) -> dict[str, Any]:
    """Follow the job's server-sent events with one progress bar per stage; returns the final job."""
    bars: dict[str, Any] = {}
    with Progress(TextColumn("[bold]{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, disable=quiet) as progress:
        while True:
            try:
                with client.stream("GET", f"/v1/rankings/{job_id}/events") as stream:
                    for line in stream.iter_lines():
                        if not line.startswith("data: "):
                            continue
                        state = json.loads(line[6:])
                        for stage, info in (state.get("progress") or {}).get("stages", {}).items():
                            if stage not in bars:
                                bars[stage] = progress.add_task(stage, total=max(1, info.get("total", 1)))
                            progress.update(bars[stage], completed=info.get("done", 0),
                                            total=max(1, info.get("total", 1)))
                break
            except httpx.ReadTimeout:
                continue  # a long unit of work: reconnect and keep following
    return _check(client.get(f"/v1/rankings/{job_id}"))


def print_table(job: dict[str, Any]) -> None:
    table = Table(title=f"ranking {job['id']} — {job['status']}")
    for col in ("rank", "backbone", "layer", "aggregate", "rank 95% CI", "verdict", "Δ (95% CI)", "flags"):
        table.add_column(col)
    for row in job["table"]:
        verdict = row.get("verdict") or {}
        ci = row.get("rank_ci")
        delta = verdict.get("delta_mean")
        delta_txt = "" if delta is None else f"{delta:+.3f} ({verdict.get('ci_low'):+.3f}, {verdict.get('ci_high'):+.3f})"
        style = {"negative_transfer": "red", "positive": "green"}.get(verdict.get("verdict"), "")
        table.add_row(str(row["rank"]), row["backbone_id"], row["best_layer"], f"{row['aggregate']:.3f}",
                      f"{ci[0]:.1f}–{ci[1]:.1f}" if ci else "", verdict.get("verdict", ""), delta_txt,
                      ",".join(row.get("flags", [])), style=style)
    console.print(table)
    if job.get("subset"):
        steps = " + ".join(f"{s['backbone_id']} ({s['score']:.3f})" for s in job["subset"]["steps"])
        console.print(f"multi-source subset by {job['subset']['metric']}: {steps}")
    for warning in job.get("warnings", []):
        err.print(f"[yellow]warning:[/] {warning}")
    if job.get("error"):
        err.print(f"[red]error:[/] {job['error']}")


def rank(
    dataset: Annotated[str, typer.Argument(help="A dataset id, or a file to upload first")],
    backbones: Annotated[str | None, typer.Option(help="Comma-separated backbone ids (default: all compatible)")] = None,
    probe: Annotated[bool, typer.Option("--probe/--no-probe", help="Run probe fine-tunes and verdicts")] = False,
    top_k: Annotated[int, typer.Option(help="Probe the k best candidates")] = 3,
    seeds: Annotated[int | None, typer.Option(help="Probe seeds")] = None,
    budget_steps: Annotated[int, typer.Option(help="Probe steps per run")] = 150,
    layers: Annotated[str, typer.Option(help="auto | last | all | comma-separated names")] = "auto",
    task_type: Annotated[str | None, typer.Option(help="Task type of an uploaded file")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the job until it ends")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final job as JSON")] = False,
    url: Annotated[str | None, typer.Option(help="Server URL (default TSCOUT_API_URL)")] = None,
    key: Annotated[str | None, typer.Option(help="API key (default TSCOUT_API_KEY)")] = None,
) -> None:
    """Rank backbones for a dataset on a running server and print the table."""
    try:
        with _client(url, key) as client:
            path = Path(dataset)
            if path.exists():
                dataset_id = upload_dataset(client, path, task_type)
                err.print(f"uploaded {path.name} → dataset {dataset_id}")
            else:
                try:
                    dataset_id = str(uuid.UUID(dataset))
                except ValueError:
                    raise ApiError(f"{dataset!r} is neither an existing file nor a dataset id") from None
            body: dict[str, Any] = {"dataset_id": dataset_id}
            if backbones:
                body["backbones"] = [b.strip() for b in backbones.split(",") if b.strip()]
            body["layers"] = layers if layers in ("auto", "last", "all") else layers.split(",")
            if probe:
                body["probe"] = {"top_k": top_k, "budget_steps": budget_steps, **({"seeds": seeds} if seeds else {})}
            job = _check(client.post("/v1/rankings", json=body))
            err.print(f"ranking {job['id']} submitted")
            if wait:
                job = follow(client, job["id"], quiet=as_json)
                while job["status"] in ("PENDING", "RUNNING"):
                    time.sleep(0.5)
                    job = _check(client.get(f"/v1/rankings/{job['id']}"))
    except (ApiError, httpx.HTTPError) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=1) from None
    if as_json:
        console.print_json(json.dumps(job))
    else:
        print_table(job)
    if job["status"] == "FAILED":
        raise typer.Exit(code=2)
