"""Ingest throughput and memory: a 10,000-image archive (32×32 PNG, 10 class folders) through the service layer.

Each ingest runs in a fresh child process (so its peak RSS is the ingest's, not the archive builder's):
the child migrates a SQLite database, resets the kernel's peak-RSS mark, calls
``app.services.datasets.create_dataset`` and commits, then reports the seconds and the peak RSS above
its pre-ingest baseline. A 2,500-image archive is measured beside it, so the RSS growth can be compared
with the archive growth (streaming: the growth should not scale with the archive).

For comparison it prints one embedding batch (``TSCOUT_EMBED_BATCH_SIZE`` images as float32 tensors) at
the archive's 32×32 and at a typical backbone input of 224×224.

    python bench/ingest.py [--images 10000] [--small 2500] [--repeats 3] [--format zip|tar.gz]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def build_archive(path: Path, n: int, fmt: str, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)

    def png(i: int) -> bytes:
        noise = rng.integers(-20, 21, (32, 32, 3))
        buf = io.BytesIO()
        Image.fromarray(np.clip(base[i % 10] + noise, 0, 255).astype(np.uint8)).save(buf, format="PNG")
        return buf.getvalue()

    if fmt == "zip":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for i in range(n):
                zf.writestr(f"data/class{i % 10}/{i:05d}.png", png(i))
    else:
        with tarfile.open(path, "w:gz") as tf:
            for i in range(n):
                data = png(i)
                info = tarfile.TarInfo(f"data/class{i % 10}/{i:05d}.png")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path.stat().st_size


CHILD = r"""
import json, sys, time
from pathlib import Path

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)

archive, work = Path(sys.argv[1]), Path(sys.argv[2])
from app.datasets.collected import IngestOptions
from app.db import migrate
from app.runtime import Runtime
from app.services.auth import get_or_create_project
from app.services.datasets import create_dataset
from app.settings import Settings

url = f"sqlite:///{work / 'bench.db'}"
migrate.upgrade(url)
runtime = Runtime.from_settings(Settings(database_url=url, storage_url=str(work / "artifacts")))
with runtime.sessions() as session:
    project_id = get_or_create_project(session, "bench").id
    session.commit()
from PIL import Image
Image.init()  # decoder plugins are code, not ingest state: load them before the baseline
baseline = status("VmRSS")
Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark to the current RSS
start = time.perf_counter()
with runtime.sessions() as session, open(archive, "rb") as fh:
    row, created = create_dataset(session, runtime.store, runtime.settings, project_id, source=fh,
                                  name="bench", options=IngestOptions(archive.name))
    session.commit()
    samples = row.num_samples
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "baseline": baseline, "peak": status("VmHWM"), "samples": samples}))
"""


def ingest_once(archive: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as work:
        out = subprocess.run([sys.executable, "-c", CHILD, str(archive), work], cwd=REPO, capture_output=True,
                             text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"ingest child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=2_500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--format", choices=["zip", "tar.gz"], default="zip")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from app.settings import Settings

    batch = Settings().embed_batch_size
    mib = 1024 * 1024
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp:
        for n in (args.small, args.images):
            path = Path(tmp) / f"images-{n}.{args.format}"
            size = build_archive(path, n, args.format)
            runs = [ingest_once(path) for _ in range(args.repeats)]
            assert all(r["samples"] == n for r in runs)
            seconds = statistics.median(r["seconds"] for r in runs)
            growth = statistics.median(r["peak"] - r["baseline"] for r in runs)
            results[n] = {"bytes": size, "seconds": seconds, "growth": growth,
                          "peak": statistics.median(r["peak"] for r in runs)}
            print(f"{n:>6} images  {args.format:<6} archive {size / mib:7.2f} MiB  ingest {seconds:6.2f} s "
                  f"({size / mib / seconds:6.2f} MB/s, {n / seconds:7.0f} img/s)  peak RSS {results[n]['peak'] / mib:7.1f} MiB"
                  f" (+{growth / mib:5.1f} MiB over the pre-ingest baseline)   [median of {args.repeats}]")
    small, large = results[args.small], results[args.images]
    batch_32 = batch * 3 * 32 * 32 * 4
    batch_224 = batch * 3 * 224 * 224 * 4
    print(f"archive grew ×{large['bytes'] / small['bytes']:.2f}; ingest RSS growth grew ×"
          f"{large['growth'] / max(small['growth'], 1):.2f}")
    print(f"one embedding batch of {batch} images as float32: {batch_32 / mib:.1f} MiB at 32×32, "
          f"{batch_224 / mib:.1f} MiB at 224×224")
    print(f"ingest RSS growth / 224×224 batch = {large['growth'] / batch_224:.2f} (target < 3); "
          f"/ 32×32 batch = {large['growth'] / batch_32:.2f}")


if __name__ == "__main__":
    main()
