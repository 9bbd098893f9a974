"""Metric scores per (target, source, layer) from the real ranking job, for ground truth v2's evaluation.

    python -m bench.transfer.scores_v2                 # every target of targets.py, resumable per target

For each target, two real ranking jobs run on a temporary SQLite database (``rank_upload`` + the local
executor's ``run_job``, as ``service_rows`` does):

* a **scoring job** with ``layers="all"``, every transferability and baseline metric the registry offers
  for classification, and domain similarity on: its stored ``metric_scores`` rows (every metric at every
  tap, the similarity and difficulty fields included, as the job names them) are written to
  ``scores_v2.csv`` — the inputs the fitted default is learned from and scored with;
* the **old service default job** (``layers=auto``, best layer, rank mean of the default metrics, pinned
  with ``aggregation="rank_mean"`` now that the fitted default is what a job with no options runs):
  its ranked table is written to ``service_default_v2.csv`` — the "old default" row of RESULTS.md.

Both jobs score at most :data:`MAX_SAMPLES` target images (the request's ``max_samples``: a stratified
subset), which only bites on the two 60-shot targets.

Resumable per (target, metric): a target's scoring job computes only the registry metrics it has no rows
for yet (a metric added to the registry later is scored on every target by running the command again;
similarity and difficulty come with the target's first job), and its service-default job runs once.
Only the measurement lives here; ``bench.transfer.evaluate`` reads the CSVs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.transfer.ground_truth_v2 import append_rows, read_rows

HERE = Path(__file__).resolve().parent
SCORE_FIELDS = ("target", "source", "layer", "metric", "value", "error")
MAX_SAMPLES = 200  # the job's stratified cap on scored target images (the few-shot targets hold fewer)
DEFAULT_FIELDS = ("target", "source", "rank", "best_layer", "aggregate")
SIMILARITY = ("otdd", "frechet_distance", "mmd")  # every target's first job: the distances of the v2 benchmark


def scoring_metrics() -> list[str]:
    """Every transferability and baseline metric the registry runs on classification targets."""
    from app.transferability import METRICS

    return [n for n, s in METRICS.items() if s.kind in ("transferability", "baseline")
            and "classification" in s.task_types]


def _run_job(target_name: str, request: dict, models_dir: Path):
    """Run one ranking job on the target's train split; returns ``(metric rows, ranked table)``."""
    from sqlalchemy import select

    from app.db import migrate
    from app.db.tables import MetricScore
    from app.execution import tasks
    from app.runtime import Runtime
    from app.services import job_handlers
    from app.services.rankings import rank_upload, read_ranking
    from app.settings import Settings
    from app.zoo.export import class_folder_zip
    from bench.transfer.targets import target

    xtr, ytr, _, _ = target(target_name).load()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/db.sqlite", storage_url=f"{tmp}/artifacts",
                            models_dir=models_dir)
        migrate.upgrade(settings.database_url)
        runtime = Runtime.from_settings(settings)
        try:
            job_id, project_id = rank_upload(runtime, "evaluate", class_folder_zip(xtr, ytr, "target"),
                                             f"{target_name}.zip", request)
            status = tasks.run_job(runtime, job_id, "evaluate", job_handlers())
            with runtime.sessions() as session:
                job = read_ranking(session, job_id, project_id)
                if status is None or status.value != "SUCCEEDED":
                    raise RuntimeError(f"ranking job for {target_name} ended {status}: {job.error}")
                rows = [{"target": target_name, "source": r.backbone_id, "layer": r.layer, "metric": r.metric,
                         "value": "" if r.value is None else repr(float(r.value)),
                         "error": (r.details or {}).get("error", "")}
                        for r in session.scalars(select(MetricScore).where(MetricScore.job_id == job_id))]
            table = [{"target": target_name, "source": r.backbone_id, "rank": r.rank, "best_layer": r.best_layer,
                      "aggregate": repr(float(r.aggregate))} for r in job.table]
            return rows, table
        finally:
            runtime.close()


def collect(target_name: str, sources: list[str], models_dir: Path, out: Path) -> tuple[int, float]:
    """Score one target (both jobs) and append its rows; returns ``(rows written, seconds)``."""
    started = time.perf_counter()
    rows_now = [r for r in read_rows(out / "scores_v2.csv") if r["target"] == target_name]
    have = {r["metric"] for r in rows_now if r["value"] != ""}  # a metric that failed everywhere is retried
    first = not rows_now
    have_default = {r["target"] for r in read_rows(out / "service_default_v2.csv")}
    n = 0
    todo = [m for m in scoring_metrics() if m not in have]
    if todo:
        rows, _ = _run_job(target_name, {"backbones": sources, "layers": "all", "metrics": todo,
                                         "similarity": list(SIMILARITY) if first else False, "bootstrap": 0, "subset_size": 0,
                                         "max_samples": MAX_SAMPLES}, models_dir)
        # difficulty fields come with every job; a retried metric's new rows are read after its old ones
        rows = [r for r in rows if r["metric"] not in have]
        append_rows(out / "scores_v2.csv", sorted(rows, key=lambda r: (r["source"], r["layer"], r["metric"])),
                    SCORE_FIELDS)
        n += len(rows)
    if target_name not in have_default:
        # the *old* default, pinned: the rank mean of the registry's default metrics at each backbone's best
        # layer (what a job with no options ran before the fitted default existed)
        _, table = _run_job(target_name, {"backbones": sources, "bootstrap": 0, "subset_size": 0,
                                          "aggregation": "rank_mean", "layer_mode": "best",
                                          "max_samples": MAX_SAMPLES}, models_dir)
        append_rows(out / "service_default_v2.csv", table, DEFAULT_FIELDS)
        n += len(table)
    return n, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    import torch

    from app.backbones.catalogue import Catalogue
    from bench.transfer.targets import TARGETS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models-dir", default="models")
    p.add_argument("--out", default=str(HERE))
    p.add_argument("--targets", default=",".join(t.name for t in TARGETS))
    p.add_argument("--sources", default="", help="comma-separated ids (default: every zoo card in --models-dir)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    models_dir = Path(a.models_dir).resolve()
    sources = a.sources.split(",") if a.sources else sorted(
        s.id for s in Catalogue(models_dir).builtins.values() if s.family == "zoo")
    out = Path(a.out)
    for name in a.targets.split(","):
        n, secs = collect(name, sources, models_dir, out)
        print(f"{name:<14} {n:5d} rows  {secs:6.1f}s", flush=True)


if __name__ == "__main__":
    main()
