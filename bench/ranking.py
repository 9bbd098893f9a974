"""Wall time of a ranking job against its forward passes: zoo backbones on a shapes target, no probes, cold
and repeated, per stage — and, with ``--probes``, the probe stage of a ranking with probes.

    python bench/ranking.py [--images 2000] [--backbones 10] [--bootstrap 30] [--probes]

Cold = empty embedding and score caches; repeated = the *same* request again (every embedding and every
metric value, bootstrap replicates included, is a cache hit). Printed: each stage's seconds cold and
repeated, the cold job's wall time divided by its embed stage (target ≤ 1.5), the repeated job's wall time
divided by the cold one's (target ≤ 0.10), and the cold job's metric seconds by metric. All on the local
executor, in this process, on a temporary SQLite database; the machine's load average is printed with it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import select  # noqa: E402

from app.db import migrate  # noqa: E402
from app.db.tables import MetricScore  # noqa: E402
from app.execution import tasks  # noqa: E402
from app.jobs.state import get_job  # noqa: E402
from app.runtime import Runtime  # noqa: E402
from app.services import job_handlers  # noqa: E402
from app.services.rankings import rank_upload  # noqa: E402
from app.settings import Settings  # noqa: E402


def shapes_zip(n: int, seed: int = 2000) -> bytes:
    from app.zoo.domains import NEW_SHAPES, generate
    from app.zoo.export import class_folder_zip

    images, labels = generate("shapes", n, seed, kinds=NEW_SHAPES, background="noise", rotate=True)
    return class_folder_zip(images, labels, "shapes", NEW_SHAPES)


def stages(runtime: Runtime, job_id: uuid.UUID) -> dict[str, float]:
    with runtime.sessions() as s:
        raw = get_job(s, job_id).progress.get("stages", {})
    return {k: (datetime.fromisoformat(v["updated_at"]) - datetime.fromisoformat(v["started_at"])).total_seconds()
            for k, v in raw.items()}


def metric_seconds(runtime: Runtime, job_id: uuid.UUID) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    with runtime.sessions() as s:
        for row in s.scalars(select(MetricScore).where(MetricScore.job_id == job_id)):
            out[row.metric] += row.seconds
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def run(runtime: Runtime, project: str, data: bytes, body: dict) -> tuple[uuid.UUID, float, dict[str, float]]:
    job_id, _ = rank_upload(runtime, project, data, "shapes.zip", body)
    started = time.perf_counter()
    status = tasks.run_job(runtime, job_id, "bench", job_handlers())
    wall = time.perf_counter() - started
    if status is None or status.value != "SUCCEEDED":
        with runtime.sessions() as s:
            raise SystemExit(f"job ended {status}: {get_job(s, job_id).error}")
    return job_id, wall, stages(runtime, job_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--backbones", type=int, default=10)
    parser.add_argument("--bootstrap", type=int, default=30, help="replicates (the request's default is 30)")
    parser.add_argument("--probes", action="store_true", help="also time a ranking with probes (cached embeddings)")
    parser.add_argument("--probe-seeds", type=int, default=5)
    parser.add_argument("--probe-steps", type=int, default=60)
    parser.add_argument("--probe-top-k", type=int, default=3)
    args = parser.parse_args()

    zoo = sorted(p.stem for p in (REPO / "models").glob("*.toml") if not p.stem.startswith("hf-"))
    backbones = [f"zoo:{name}" for name in zoo[: args.backbones]]
    data = shapes_zip(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/db.sqlite", storage_url=f"{tmp}/artifacts",
                            models_dir=REPO / "models")
        migrate.upgrade(settings.database_url)
        runtime = Runtime.from_settings(settings)
        body = {"backbones": backbones, "layers": "auto", "bootstrap": args.bootstrap}
        cold_id, cold, cold_stages = run(runtime, "bench", data, body)
        _, again, again_stages = run(runtime, "bench", data, body)
        costs = metric_seconds(runtime, cold_id)
        probed_stages: dict[str, float] = {}
        if args.probes:
            probe_body = {**body, "probe": {"top_k": args.probe_top_k, "include_suspicious": False,
                                            "seeds": args.probe_seeds, "budget_steps": args.probe_steps,
                                            "lr_grid": [0.003], "arms": ["finetune", "scratch", "linear"]}}
            _, probed, probed_stages = run(runtime, "bench", data, probe_body)
        runtime.close()
    print(f"{len(backbones)} zoo backbones, {args.images} images (train split {int(args.images * 0.8)}), "
          f"layers=auto, bootstrap={args.bootstrap}, no probes; torch threads {__import__('torch').get_num_threads()}")
    names = list(dict.fromkeys([*cold_stages, *again_stages]))
    print(f"{'stage':<10}{'cold s':>9}{'repeated s':>12}")
    for name in names:
        print(f"{name:<10}{cold_stages.get(name, float('nan')):>9.2f}{again_stages.get(name, float('nan')):>12.2f}")
    print(f"{'job wall':<10}{cold:>9.2f}{again:>12.2f}")
    embed = cold_stages["embed"]
    print(f"cold job / its embed stage: {cold / embed:.2f}× (target ≤ 1.5)")
    print(f"repeated job / cold job: {again / cold:.3f} (target ≤ 0.10)")
    print(f"rank stage / score stage (cold): {cold_stages.get('rank', 0.0) / max(cold_stages['score'], 1e-9):.2f} "
          "(target ≤ 0.20)")
    print("cold metric seconds by metric: " + ", ".join(f"{k} {v:.2f}" for k, v in costs.items() if v >= 0.005))
    if args.probes:
        print(f"probe stage ({args.probe_top_k} candidates × 3 arms × {args.probe_seeds} seeds × {args.probe_steps} "
              f"steps, cached embeddings): {probed_stages.get('probe', float('nan')):.1f} s")
    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
