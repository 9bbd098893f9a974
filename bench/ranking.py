"""Wall time of a ranking job: 10 zoo backbones on 2,000 images without probes, cold and cached, and
the probe stage of a ranking with probes.

    python bench/ranking.py [--images 2000] [--backbones 10] [--probe-seeds 5] [--probe-steps 60]

Cold = empty embedding cache; cached = the same request again (every embedding is a cache hit, the
metrics, bootstrap and subset are recomputed). The probe run reuses the cache and reports the probe
stage's own time. All on the local executor, in this process, on a temporary SQLite database.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.db import migrate  # noqa: E402
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


def stages(runtime: Runtime, job_id) -> dict[str, float]:
    with runtime.sessions() as s:
        raw = get_job(s, job_id).progress.get("stages", {})
    return {k: (datetime.fromisoformat(v["updated_at"]) - datetime.fromisoformat(v["started_at"])).total_seconds()
            for k, v in raw.items()}


def run(runtime: Runtime, project: str, data: bytes, body: dict) -> tuple[float, dict[str, float]]:
    job_id, _ = rank_upload(runtime, project, data, "shapes.zip", body)
    started = time.perf_counter()
    status = tasks.run_job(runtime, job_id, "bench", job_handlers())
    wall = time.perf_counter() - started
    if status is None or status.value != "SUCCEEDED":
        with runtime.sessions() as s:
            raise SystemExit(f"job ended {status}: {get_job(s, job_id).error}")
    return wall, stages(runtime, job_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--backbones", type=int, default=10)
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
        body = {"backbones": backbones, "layers": "auto"}
        cold, cold_stages = run(runtime, "bench", data, body)
        cached, cached_stages = run(runtime, "bench", data, {**body, "seed": 1})
        probe_body = {**body, "probe": {"top_k": args.probe_top_k, "include_suspicious": False,
                                        "seeds": args.probe_seeds, "budget_steps": args.probe_steps,
                                        "lr_grid": [0.003], "arms": ["finetune", "scratch", "linear"]}}
        probed, probed_stages = run(runtime, "bench", data, {**probe_body, "seed": 2})
        runtime.close()
    fmt = lambda st: ", ".join(f"{k} {v:.1f}s" for k, v in st.items())  # noqa: E731
    print(f"{len(backbones)} zoo backbones, {args.images} images (train split {int(args.images * 0.8)}), layers=auto")
    print(f"{'run':<28}{'wall s':>9}  stages")
    print(f"{'no probes, cold cache':<28}{cold:>9.1f}  {fmt(cold_stages)}")
    print(f"{'no probes, cached':<28}{cached:>9.1f}  {fmt(cached_stages)}")
    print(f"{'with probes (cached)':<28}{probed:>9.1f}  {fmt(probed_stages)}")
    print(f"cold/cached: {cold / cached:.2f}×; embed stage cold/cached: "
          f"{cold_stages['embed'] / max(cached_stages['embed'], 1e-9):.0f}×; probe stage "
          f"({args.probe_top_k} candidates × 3 arms × {args.probe_seeds} seeds × {args.probe_steps} steps): "
          f"{probed_stages.get('probe', float('nan')):.1f} s")
    print("load average:", " ".join(f"{x:.2f}" for x in np.round(__import__("os").getloadavg(), 2)))


if __name__ == "__main__":
    main()
