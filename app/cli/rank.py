"""``tscout rank``: rank a dataset on a running server, through :mod:`app.client`. The dataset is an id, a
file (zip, tar, CSV, JSONL, npz…) or a folder of class sub-folders (zipped while it uploads). Follows the
job with one progress bar per stage, then prints the table; ``--no-wait`` prints the job id and the command
that follows it. The printing helpers here are shared with ``tscout rankings`` and ``tscout demo``."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.console import console, err, fail

if TYPE_CHECKING:
    from app.client import Client
    from app.schemas.rankings import RankingRead


def follow(client: Client, job_id: Any, *, quiet: bool) -> RankingRead:
    """Wait for the job with one progress bar per stage (on stderr); returns the final ranking."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bars: dict[str, Any] = {}
    with Progress(TextColumn("[bold]{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, disable=quiet) as progress:
        def on_progress(state: dict[str, Any]) -> None:
            for stage, info in (state.get("progress") or {}).get("stages", {}).items():
                total = max(1, int(info.get("total") or 1))
                if stage not in bars:
                    bars[stage] = progress.add_task(stage, total=total)
                progress.update(bars[stage], completed=info.get("done", 0), total=total)

        return client.wait(job_id, on_progress=on_progress)


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "" if value is None else format(value, fmt)


def print_table(job: RankingRead) -> None:
    from rich.table import Table

    from app.client.export import candidate_label

    table = Table(title=f"ranking {job.id} — {job.status.value}")
    for col in ("rank", "backbone", "layer", "aggregate", "rank 95% CI", "verdict", "Δ (95% CI)", "flags"):
        table.add_column(col)
    for row in job.table:
        v = row.verdict
        delta = "" if v is None or v.delta_mean is None else \
            f"{v.delta_mean:+.3f} ({_num(v.ci_low, '+.3f')}, {_num(v.ci_high, '+.3f')})"
        style = {"negative_transfer": "red", "positive": "green"}.get(v.verdict if v else "", "")
        if row.status == "failed":
            table.add_row("—", candidate_label(job, row.backbone_id), "", "", "", "failed", row.error or "", "",
                          style="dim")
            continue
        ci = row.rank_ci
        table.add_row(str(row.rank), candidate_label(job, row.backbone_id), row.best_layer or "", _num(row.aggregate),
                      f"{ci[0]:.1f}–{ci[1]:.1f}" if ci else "", v.verdict if v else "", delta,
                      ",".join(row.flags), style=style)
    console.print(table)
    if job.subset:
        steps = " + ".join(f"{s['backbone_id']} ({s['score']:.3f})" for s in job.subset.steps)
        console.print(f"multi-source subset by {job.subset.metric}: {steps}")
    for warning in job.warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    if job.error:
        err.print(f"[red]error:[/] {job.error}")


def print_job(job: RankingRead, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(job.model_dump(mode="json")))
    else:
        print_table(job)
    if job.status.value == "FAILED":
        raise typer.Exit(code=2)


def _dataset_id(client: Client, dataset: str, *, task_type: str | None, text_column: str | None,
                label_column: str | None) -> tuple[str, str | None]:
    """The dataset's id (uploading a file or folder first) and its modality when it was uploaded."""
    path = Path(dataset)
    if path.exists():
        uploaded = client.upload_dataset(path, task_type=task_type, text_column=text_column,
                                         label_column=label_column)
        what = "folder" if path.is_dir() else "file"
        err.print(f"uploaded {what} {path.name} → dataset {uploaded.id} ({uploaded.num_samples} samples, "
                  f"{uploaded.modality}, {uploaded.task_type})", soft_wrap=True)
        for note in uploaded.notes:
            err.print(f"[yellow]note:[/] {note}", soft_wrap=True)
        return str(uploaded.id), uploaded.modality
    try:
        return str(uuid.UUID(dataset)), None
    except ValueError:
        fail(f"{dataset!r} is neither an existing file or folder nor a dataset id")


def _feature_sets(client: Client, datasets: list[str], backbones: str | None, **upload: Any) -> list[str]:
    """Several datasets: feature sets of the same samples (one per model), uploaded as needed; their ids."""
    if backbones:
        fail("--backbones: several datasets are ranked as feature sets against each other; give one dataset to "
             "rank backbones")
    ids = []
    for dataset in datasets:
        dataset_id, modality = _dataset_id(client, dataset, **upload)
        if (modality or client.dataset(dataset_id).modality) != "features":
            fail(f"{dataset}: several datasets are ranked as feature sets (.npz or .parquet with 'features'); "
                 "this one is not")
        ids.append(dataset_id)
    return ids


def rank(
    datasets: Annotated[list[str], typer.Argument(
        help="A dataset id, a file to upload, or a folder of class folders; or several features files (or ids) "
             "of the same samples, one per model, ranked as feature sets (the first gives the labels)",
        metavar="DATASET...")],
    backbones: Annotated[str | None, typer.Option(help="Comma-separated backbone ids (default: all compatible)")] = None,
    probe: Annotated[bool, typer.Option("--probe/--no-probe", help="Run probe fine-tunes and verdicts")] = False,
    top_k: Annotated[int, typer.Option(help="Probe the k best candidates")] = 3,
    seeds: Annotated[int | None, typer.Option(help="Probe seeds (default: the server's TSCOUT_PROBE_SEEDS)")] = None,
    budget_steps: Annotated[int, typer.Option(help="Probe steps per run")] = 150,
    budget_seconds: Annotated[float, typer.Option(help="Wall-clock cap per probe run (s)")] = 120.0,
    suspicious: Annotated[bool, typer.Option("--suspicious/--no-suspicious",
                                             help="Also probe flagged (far-domain, low-score) sources")] = True,
    max_suspicious: Annotated[int, typer.Option(help="At most this many suspicious sources")] = 2,
    layers: Annotated[str, typer.Option(help="auto | last | all | comma-separated names")] = "auto",
    metrics: Annotated[str | None, typer.Option(help="Comma-separated metric names (default: by task type)")] = None,
    task_type: Annotated[str | None, typer.Option(help="Task type of an uploaded file")] = None,
    text_column: Annotated[str | None, typer.Option(help="Text column of an uploaded CSV/JSONL")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column of an uploaded CSV/JSONL")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the job until it ends")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final job as JSON")] = False,
    url: Annotated[str | None, typer.Option(help="Server URL (default TSCOUT_API_URL)")] = None,
    key: Annotated[str | None, typer.Option(help="API key (default TSCOUT_API_KEY)")] = None,
) -> None:
    """Rank backbones for a dataset (or feature sets against each other) on a running server; print the table."""
    from app.client import Client, ScoutError

    options: dict[str, Any] = {"layers": layers if layers in ("auto", "last", "all") else layers.split(",")}
    if backbones:
        options["backbones"] = [b.strip() for b in backbones.split(",") if b.strip()]
    if metrics:
        options["metrics"] = [m.strip() for m in metrics.split(",") if m.strip()]
    if probe:
        options["probe"] = {"top_k": top_k, "budget_steps": budget_steps, "budget_seconds": budget_seconds,
                            "include_suspicious": suspicious, "max_suspicious": max_suspicious,
                            **({"seeds": seeds} if seeds else {})}
    try:
        with Client(url, key) as client:
            upload = {"task_type": task_type, "text_column": text_column, "label_column": label_column}
            if len(datasets) > 1:
                ids = _feature_sets(client, datasets, backbones, **upload)
                job = client.rank_feature_sets(ids, **options)
            else:
                job = client.rank(_dataset_id(client, datasets[0], **upload)[0], **options)
            if not wait:
                err.print(f"ranking {job.id} submitted; follow it with: tscout rankings show {job.id} --wait",
                          soft_wrap=True)
                console.print(str(job.id))
                return
            err.print(f"ranking {job.id} submitted")
            job = follow(client, job.id, quiet=as_json)
    except (ScoutError, ValueError) as exc:
        fail(str(exc))
    print_job(job, as_json)
