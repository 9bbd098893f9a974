"""The Sinkhorn solver of OTDD in its two forms, side by side in one run: log domain (one exponential of the
n × m cost per half-iteration) against the scaling form with absorption (one matrix–vector product), on the
outer problems a ranking job's OTDD solves — a stored source sample of 256 against the target's 512, halved
squared distances between clustered features, ε = 0.1.

    python bench/sinkhorn.py [--problems 6] [--dim 32] [--repeats 3] [--device cuda]

With ``--device cuda`` the log domain runs on the GPU (the path a GPU job takes) against the scaling form
on the CPU.

Printed per problem: the cost range, the iterations at the target ε (equal in both forms: the same
iterates), each form's median seconds, their ratio, and the relative difference of the two transport costs;
then the median ratio. Interleaved repeats in this process; the load average is printed with it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.transferability._sinkhorn import log_sinkhorn  # noqa: E402


def problem(seed: int, dim: int, n: int = 256, m: int = 512) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=0.8 + 0.2 * (seed % 3), size=(8, dim))
    x = centres[rng.integers(0, 8, n)] + rng.normal(size=(n, dim))
    y = centres[rng.integers(0, 8, m)] + rng.normal(size=(m, dim)) + 0.3
    d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return torch.from_numpy(0.5 * np.maximum(d2, 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=6)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="where the log domain runs (cpu or cuda)")
    args = parser.parse_args()
    if args.device != "cpu" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: no CUDA device here")
    torch.set_num_threads(1)  # the log domain's CPU path iterates in numpy either way; keep torch out of it
    print(f"log domain on {args.device}, scaling form on the CPU")
    print(f"{'problem':<8}{'range':>8}{'iters':>7}{'log s':>9}{'scaling s':>11}{'ratio':>8}{'cost rel diff':>15}")
    ratios = []
    for p in range(args.problems):
        cost = problem(p, args.dim)
        times: dict[str, list[float]] = {"log": [], "scaling": []}
        results = {}
        for _ in range(args.repeats):
            for form in ("log", "scaling"):
                on = cost.to(args.device) if form == "log" else cost
                started = time.perf_counter()
                results[form] = log_sinkhorn(on, 0.1, form=form)
                if on.device.type == "cuda":
                    torch.cuda.synchronize()
                times[form].append(time.perf_counter() - started)
        log_s, scaling_s = statistics.median(times["log"]), statistics.median(times["scaling"])
        ratios.append(log_s / scaling_s)
        a, b = results["log"], results["scaling"]
        print(f"{p:<8}{float(cost.max() - cost.min()):>8.1f}{b.n_iter:>7}{log_s:>9.3f}{scaling_s:>11.3f}"
              f"{log_s / scaling_s:>7.1f}×{abs(a.cost - b.cost) / abs(a.cost):>15.1e}", flush=True)
    print(f"median speed-up of the scaling form: {statistics.median(ratios):.1f}×")
    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
