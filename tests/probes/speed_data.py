"""Measured comparison (not a test): decoding probe data per unit vs once per job (``ProbeDataCache``).

    PYTHONPATH=. python -m tests.probes.speed_data [--rows 200] [--size 224] [--steps 50] [--units 6]

Within one ``ProbeData`` every row is decoded and transformed once (``prepare``) and batches only stack
the decoded tensors; but the job built a new ``ProbeData`` per unit, so every unit decoded again. The
script times ``--units`` units that each build their own data against units sharing one cached copy, and
prints the per-step batch time on decoded data next to what a per-step decode would cost.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from app.probes.data import ProbeData, ProbeDataCache


class ImageSet(torch.utils.data.Dataset):
    """uint8 images resized to ``size`` and normalised by the transform, as a torchvision pipeline does."""

    def __init__(self, n: int, size: int) -> None:
        self.raw = np.random.default_rng(0).integers(0, 255, size=(n, 3, 64, 64), dtype=np.uint8)
        self.size = size

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, i: int):
        x = torch.from_numpy(self.raw[i]).float().div(255)[None]
        x = torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)[0]
        return (x - 0.5) / 0.5, 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--units", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(1)
    labels = np.arange(args.rows) % 4
    stack = lambda s: torch.stack(list(s))  # noqa: E731
    build = lambda: ProbeData(ImageSet(args.rows, args.size), labels, task_type="classification")  # noqa: E731
    plan = ProbeData.batch_plan(args.rows, args.steps, args.batch, 0)

    t0 = time.perf_counter()
    for _ in range(args.units):
        build().prepare()
    per_unit = time.perf_counter() - t0
    cache = ProbeDataCache()
    t0 = time.perf_counter()
    for _ in range(args.units):
        cache.get(("dataset-digest", "train", f"{args.size}px"), build).prepare()
    cached = time.perf_counter() - t0

    data = cache.get(("dataset-digest", "train", f"{args.size}px"), build)
    t0 = time.perf_counter()
    for rows in plan:
        data.batch(rows, stack)
    fetch = (time.perf_counter() - t0) / args.steps
    raw = ImageSet(args.rows, args.size)
    t0 = time.perf_counter()
    for rows in plan[:5]:
        stack([raw[int(i)][0] for i in rows])
    decode_step = (time.perf_counter() - t0) / 5
    print(f"{args.rows} rows at {args.size} px, batch {args.batch}, 1 thread")
    print(f"  {args.units} units, each decoding its own data: {per_unit:.3f} s; sharing ProbeDataCache: "
          f"{cached:.3f} s ({cache.builds} build, {cache.hits} hits) -> {per_unit / cached:.1f}x")
    print(f"  a batch from decoded data: {1000 * fetch:.2f} ms/step; decoding it at every step would cost "
          f"{1000 * decode_step:.2f} ms/step -> {decode_step / fetch:.1f}x")


if __name__ == "__main__":
    main()
