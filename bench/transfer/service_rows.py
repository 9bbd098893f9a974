"""Rows of the evaluation that come from the service itself.

* ``ranking service (default job)``: the real ranking job — ``rank_upload`` + the local executor's
  ``run_job`` on a temporary database — with the service defaults (``layers=auto`` and the best layer per
  backbone, the default metric set, rank-mean aggregation), scored on the target's labelled images.
* verdict precision / recall: the job's verdict rule (``app.probes.verdict.judge``: bootstrap CI of the
  paired Δ against the margin δ = 0.01, Holm across the target's candidates, paired t-test) applied to the
  ground truth's own per-seed runs (``runs.csv``). These are the same runs the labels come from, so this
  measures how the service's CI-and-margin rule agrees with the benchmark's significance rule — it is not
  an independent replication (which would need a second 1,080-unit probe sweep).
"""

from __future__ import annotations

import csv
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def ranking_service_scores(target_name: str, sources: list[str], models_dir: Path) -> dict[str, float]:
    """``{source: aggregate score}`` from one real ranking job without probes."""
    from app.db import migrate
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
            job_id, project_id = rank_upload(runtime, "evaluate", class_folder_zip(xtr, ytr, "target"), f"{target_name}.zip",
                                             {"backbones": sources, "bootstrap": 0, "subset_size": 0})
            status = tasks.run_job(runtime, job_id, "evaluate", job_handlers())
            with runtime.sessions() as session:
                job = read_ranking(session, job_id, project_id)
            if status is None or status.value != "SUCCEEDED":
                raise RuntimeError(f"ranking job for {target_name} ended {status}: {job.error}")
            return {row.backbone_id: row.aggregate for row in job.table}
        finally:
            runtime.close()


def service_verdicts(runs_csv: Path, margin: float = 0.01) -> dict[tuple[str, str], str]:
    """The service's verdict rule applied per target to the ground truth's paired runs."""
    from app.probes.verdict import judge

    arms: dict[str, dict[str, dict[str, dict[int, float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    with open(runs_csv) as fh:
        for row in csv.DictReader(fh):
            arms[row["target"]][row["source"]][row["arm"]][int(row["seed"])] = float(row["accuracy"])
    verdicts = {}
    for tgt, candidates in arms.items():
        for result in judge({s: dict(a) for s, a in candidates.items()}, margin=margin, test="t"):
            verdicts[(tgt, result.backbone_id)] = result.verdict
    return verdicts
