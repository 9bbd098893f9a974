"""Wall time of a ranking job against its forward passes: zoo backbones on a shapes target, no probes, cold
and repeated, per stage — and, with ``--probes``, the probe stage of a ranking with probes.

    python bench/ranking.py [--images 2000] [--backbones 10] [--bootstrap 30] [--repeats 3] [--probes]

Cold = empty embedding and score caches; repeated = the *same* request again (every embedding and every
metric value, bootstrap replicates included, is a cache hit). Printed: each stage's seconds cold and
repeated, the cold job's wall time divided by its embed stage (target ≤ 1.5), the repeated job's wall time
divided by the cold one's (target ≤ 0.10), and the cold job's metric seconds by metric — medians over
``--repeats`` pairs of jobs, each pair on a fresh temporary SQLite database and artifact store. All on the
local executor's unit runner, in this process, which has preloaded the metrics' libraries as a started
executor has (``app.transferability.preload``); the machine's load average is printed with it.
"""

from __future__ import annotations

import argparse
import os
import statistics
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
from app.jobs.unit_pool import unit_pool  # noqa: E402
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
    parser.add_argument("--repeats", type=int, default=3, help="pairs of cold and repeated jobs (medians)")
    parser.add_argument("--probes", action="store_true", help="also time a ranking with probes (cached embeddings)")
    parser.add_argument("--probe-seeds", type=int, default=5)
    parser.add_argument("--probe-steps", type=int, default=60)
    parser.add_argument("--probe-top-k", type=int, default=3)
    parser.add_argument("--unit-processes", choices=("on", "off"), default="on",
                        help="score units in worker processes (the default) or on threads")
    args = parser.parse_args()

    zoo = sorted(p.stem for p in (REPO / "models").glob("*.toml") if not p.stem.startswith("hf-"))
    backbones = [f"zoo:{name}" for name in zoo[: args.backbones]]
    data = shapes_zip(args.images)
    from app.transferability import preload

    preload()  # what LocalExecutor.start does beside the service's start
    runs: list[tuple[float, float, dict[str, float], dict[str, float], dict[str, float]]] = []
    probed_stages: dict[str, float] = {}
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(database_url=f"sqlite:///{tmp}/db.sqlite", storage_url=f"{tmp}/artifacts",
                                models_dir=REPO / "models", unit_processes=args.unit_processes == "on")
            migrate.upgrade(settings.database_url)
            runtime = Runtime.from_settings(settings)
            pool = unit_pool(runtime)
            if pool is not None:
                pool.warm()  # as LocalExecutor.start does beside the service's start
            body = {"backbones": backbones, "layers": "auto", "bootstrap": args.bootstrap}
            cold_id, cold, cold_stages = run(runtime, "bench", data, body)
            _, again, again_stages = run(runtime, "bench", data, body)
            runs.append((cold, again, cold_stages, again_stages, metric_seconds(runtime, cold_id)))
            if args.probes and repeat == 0:
                probe_body = {**body, "probe": {"top_k": args.probe_top_k, "include_suspicious": False,
                                                "seeds": args.probe_seeds, "budget_steps": args.probe_steps,
                                                "lr_grid": [0.003], "arms": ["finetune", "scratch", "linear"]}}
                _, probed, probed_stages = run(runtime, "bench", data, probe_body)
            runtime.close()
        print(f"  pair {repeat + 1}/{args.repeats}: cold {cold:.2f} s (embed {cold_stages['embed']:.2f} s), "
              f"repeated {again:.2f} s", file=sys.stderr)

    def median(values) -> float:
        return statistics.median(values)

    cold = median(r[0] for r in runs)
    again = median(r[1] for r in runs)
    cold_stages = {k: median(r[2].get(k, 0.0) for r in runs) for k in runs[0][2]}
    again_stages = {k: median(r[3].get(k, 0.0) for r in runs) for k in runs[0][3]}
    costs = {k: median(r[4].get(k, 0.0) for r in runs) for k in runs[0][4]}
    print(f"{len(backbones)} zoo backbones, {args.images} images (train split {int(args.images * 0.8)}), "
          f"layers=auto, bootstrap={args.bootstrap}, no probes; torch threads {__import__('torch').get_num_threads()}, "
          f"unit threads {Settings().unit_thread_count} (unit processes {args.unit_processes}); "
          f"medians of {args.repeats} pairs")
    names = list(dict.fromkeys([*cold_stages, *again_stages]))
    print(f"{'stage':<10}{'cold s':>9}{'repeated s':>12}")
    for name in names:
        print(f"{name:<10}{cold_stages.get(name, float('nan')):>9.2f}{again_stages.get(name, float('nan')):>12.2f}")
    print(f"{'job wall':<10}{cold:>9.2f}{again:>12.2f}")
    ratio = median(r[0] / r[2]["embed"] for r in runs)
    print(f"cold job / its embed stage: {ratio:.2f}× (median of the pairs' ratios; target ≤ 1.5)")
    print(f"repeated job / cold job: {median(r[1] / r[0] for r in runs):.3f} (target ≤ 0.10)")
    print(f"rank stage / score stage (cold): {median(r[2].get('rank', 0.0) / max(r[2]['score'], 1e-9) for r in runs):.2f} "
          "(target ≤ 0.20)")
    print("cold metric seconds by metric: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(costs.items(), key=lambda kv: -kv[1]) if v >= 0.005))
    if args.probes:
        print(f"probe stage ({args.probe_top_k} candidates × 3 arms × {args.probe_seeds} seeds × {args.probe_steps} "
              f"steps, cached embeddings): {probed_stages.get('probe', float('nan')):.1f} s")
    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
