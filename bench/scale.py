"""Local executor vs Ray on the same machine: one ranking of 8 zoo backbones with probes.

    python bench/scale.py [--backbones 8] [--seeds 3] [--steps 40] [--ray-cpus 2]

Each executor runs the same job on a fresh database and a fresh artifact store (no shared embedding
cache), one after the other in this process. Prints both wall times, their ratio, the stage times, and
the per-task overhead Ray adds (median of no-op units through Ray vs inline). On a 2-core machine Ray
cannot win much: the figure to watch is its overhead, which is what it costs before a cluster's extra
GPUs pay back.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.db import migrate  # noqa: E402
from app.execution import tasks  # noqa: E402
from app.jobs.context import InlineUnitRunner  # noqa: E402
from app.runtime import Runtime  # noqa: E402
from app.services import job_handlers  # noqa: E402
from app.services.rankings import rank_upload  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench.transfer.targets import target  # noqa: E402


def target_zip(name: str) -> bytes:
    from app.zoo.export import class_folder_zip

    images, labels, _, _ = target(name).load()
    return class_folder_zip(images, labels, name)


def noop_unit(runtime: Runtime, i: int) -> int:
    return i


def prepare(folder: Path, data: bytes, body: dict, executor: str, ray_cpus: int) -> tuple[Runtime, object]:
    settings = Settings(database_url=f"sqlite:///{folder / 'db.sqlite'}", storage_url=str(folder / "artifacts"),
                        models_dir=REPO / "models", executor=executor, ray_local_num_cpus=ray_cpus,
                        ray_num_cpus=1)
    migrate.upgrade(settings.database_url)
    runtime = Runtime.from_settings(settings)
    job_id, _ = rank_upload(runtime, "bench", data, "target.zip", body)
    return runtime, job_id


def stage_seconds(runtime: Runtime, job_id) -> dict[str, float]:
    from datetime import datetime

    from app.jobs.state import get_job

    with runtime.sessions() as s:
        stages = get_job(s, job_id).progress.get("stages", {})
    return {k: (datetime.fromisoformat(v["updated_at"]) - datetime.fromisoformat(v["started_at"])).total_seconds()
            for k, v in stages.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--target", default="shapes_new")
    parser.add_argument("--ray-cpus", type=int, default=2)
    parser.add_argument("--noop-tasks", type=int, default=40)
    args = parser.parse_args()

    import ray

    from app.execution.ray import REPO_ROOT, RayExecutor

    zoo = sorted(p.stem for p in (REPO / "models").glob("*.toml") if not p.stem.startswith("hf-"))
    backbones = [f"zoo:{name}" for name in zoo[: args.backbones]]
    body = {"backbones": backbones, "layers": "auto", "bootstrap": 10,
            "probe": {"top_k": 2, "include_suspicious": False, "seeds": args.seeds, "budget_steps": args.steps,
                      "lr_grid": [0.003], "batch_size": 32}}
    data = target_zip(args.target)
    print(f"target {args.target}: {len(data) / 1e6:.2f} MB zip; {len(backbones)} backbones; "
          f"probes: top 2 × 3 arms × {args.seeds} seeds × {args.steps} steps")
    walls, stages = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for executor in ("local", "ray"):
            folder = Path(tmp) / executor
            folder.mkdir()
            runtime, job_id = prepare(folder, data, body, executor, args.ray_cpus)
            units = None
            if executor == "ray":
                ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
                         runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}})
                ray_exec = RayExecutor(runtime, job_handlers())
                ray_exec.connect()
                units = ray_exec.units
                units.map("bench.scale:noop_unit", [(0,)], on_done=lambda d: None, check_cancelled=lambda: None)
            started = time.perf_counter()
            status = tasks.run_job(runtime, job_id, f"bench-{executor}", job_handlers(), units)
            walls[executor] = time.perf_counter() - started
            stages[executor] = stage_seconds(runtime, job_id)
            print(f"{executor:>5}: {status} in {walls[executor]:.1f} s  stages: "
                  + ", ".join(f"{k} {v:.1f}s" for k, v in stages[executor].items()))
            if executor == "ray":
                inline = InlineUnitRunner(runtime)
                overhead = []
                for runner in (inline, units):
                    t0 = time.perf_counter()
                    runner.map("bench.scale:noop_unit", [(i,) for i in range(args.noop_tasks)],
                               on_done=lambda d: None, check_cancelled=lambda: None)
                    overhead.append((time.perf_counter() - t0) / args.noop_tasks)
                single = []
                for _ in range(10):
                    t0 = time.perf_counter()
                    units.map("bench.scale:noop_unit", [(0,)], on_done=lambda d: None, check_cancelled=lambda: None)
                    single.append(time.perf_counter() - t0)
                ray.shutdown()
            runtime.close()
    print()
    print(f"{'executor':<10}{'wall s':>10}")
    for name, wall in walls.items():
        print(f"{name:<10}{wall:>10.1f}")
    print(f"ratio local/ray: {walls['local'] / walls['ray']:.2f}× (> 1 means Ray was faster)")
    print(f"per-task overhead, {args.noop_tasks} no-op units in one map: inline {overhead[0] * 1e3:.2f} ms, "
          f"ray {overhead[1] * 1e3:.2f} ms per task")
    print(f"one no-op unit through Ray, round trip: median {statistics.median(single) * 1e3:.1f} ms (10 runs)")
    print(f"embedding-stage ratio local/ray: {stages['local'].get('embed', np.nan) / stages['ray'].get('embed', np.nan):.2f}×; "
          f"probe-stage ratio: {stages['local'].get('probe', np.nan) / stages['ray'].get('probe', np.nan):.2f}×")


if __name__ == "__main__":
    main()
