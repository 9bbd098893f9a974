"""Benchmark of the metric library against the float64 Gram matrix FᵀF measured in the same run.

    python bench/metrics.py            # N=20000, D=1024, C=100 (N=5000 for PARC, NLEEP, OTDD, OTCE)
    python bench/metrics.py --quick    # N=4000, D=256, C=20 (N=1000 for the O(N²)/GMM/OT metrics)
    python bench/metrics.py --device cuda --only logme hscore   # CUDA tensors in, the Gram on the GPU too

Metrics without a 3× target state their floor instead: PACTran-Gaussian is up to 100 L-BFGS iterations
of O(N·D·C) (tens of Gram matrices); RSA ranks all pairs of a 5000-sample subsample (O(N²)); OTDD and
OTCE are OT problems on subsamples (OTDD: C_s·C_t exact class problems + log-domain Sinkhorn on ≤ 5000
per side; OTCE: exact OT on ≤ 1000 per side); DDS compares two representations, so it needs the Gram of
each and their cross product FᵀR — with the 1000-wide logits here, about 4× the features' Gram (the cross
product is a full N·D·R product, the Gram a symmetric one) before its standardisation passes.

Per metric: median wall time over repeats, the Gram time, their ratio and peak memory. The Gram time of
each row is measured in the same child process, interleaved with the metric's repeats (Gram, metric,
Gram, metric, ...), so that a shared machine's changing load hits both alike. Peak memory is the peak
resident-set-size increase over the RSS before the calls (ru_maxrss cannot be reset, so each metric runs
in a fresh child process; ``tracemalloc`` would miss BLAS / torch buffers). The load average is printed
with every row.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TARGET_3X = {"logme", "hscore", "hscore_shrinkage", "transrate", "sfda", "gbc", "leep", "nce",
             "etran_lda", "etran_energy", "pactran_dirichlet", "pactran_gamma", "ncti_seli", "ncti_ncc", "ncti_vc",
             "lfc"}
SMALL_N = {"parc", "nleep", "otdd", "otce"}
SLOW = {"nleep", "otdd", "linear_probe_accuracy", "parc", "proxy_a_distance", "knn_accuracy", "task_difficulty", "mmd",
        "pactran_gaussian", "rsa", "otce"}


def make_data(n, d, c, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    rng.shuffle(y)
    # Realistic embeddings: class structure in a low-dimensional subspace plus a decaying spectrum.
    basis = rng.normal(size=(64, d)) / np.sqrt(64)
    centers = rng.normal(size=(c, 64)) * 2.0
    spectrum = 1.0 / np.sqrt(1.0 + np.arange(d))
    f = (centers[y] + rng.normal(size=(n, 64))) @ basis + rng.normal(size=(n, d)) * spectrum
    logits = rng.normal(size=(n, 1000))
    logits[np.arange(n), (y * 7) % 1000] += 3.0
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return f.astype(np.float32), y, p


def _rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _call(name, n, d, c, repeats, queue, device="cpu"):
    import torch

    import app.transferability as tr

    f, y, p = make_data(n, d, c)
    f64 = f.astype(np.float64)
    logits = np.log(p)
    sync = (lambda: None) if device == "cpu" else (lambda: torch.cuda.synchronize())
    if device != "cpu":  # the metrics take CUDA tensors as they are and compute there
        f64 = torch.from_numpy(f64).to(device)
        f, p, logits = (torch.from_numpy(a).to(device) for a in (f, p, logits))
    half = n // 2
    calls = {
        "gram": lambda: f64.T @ f64,
        "leep": lambda: tr.leep(p, y),
        "nce": lambda: tr.nce(p, y),
        "otdd": lambda: tr.otdd(f[:half], y[:half], f[half:], y[half:], max_samples=half),
        "otce": lambda: tr.otce(f[:half], y[:half], f[half:], y[half:]),
        "etran_energy": lambda: tr.etran_energy(f),
        "pactran_dirichlet": lambda: tr.pactran_dirichlet(p, y),
        "pactran_gamma": lambda: tr.pactran_gamma(p, y),
        # the other representation of the same samples: the 1000-class source head's logits
        "rsa": lambda: tr.rsa(f, logits),
        "dds": lambda: tr.dds(f, logits),
        "frechet_distance": lambda: tr.frechet_distance(f[:half], f[half:]),
        "mmd": lambda: tr.mmd(f[:half], f[half:]),
        "proxy_a_distance": lambda: tr.proxy_a_distance(f[:half], f[half:]),
    }
    fn = calls.get(name) or (lambda: tr.METRICS[name].fn(f, y))
    base = _rss_mb()
    times, gram_times = [], []

    def timed(call, out):
        sync()
        t0 = time.perf_counter()
        call()
        sync()
        out.append(time.perf_counter() - t0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(repeats):
            timed(calls["gram"], gram_times)
            timed(fn, times)
        timed(calls["gram"], gram_times)
        while len(gram_times) < 3:
            timed(calls["gram"], gram_times)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    queue.put((statistics.median(times), statistics.median(gram_times), peak))


def measure(name, n, d, c, repeats, device="cpu"):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_call, args=(name, n, d, c, repeats, q, device))
    proc.start()
    out = q.get()
    proc.join()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes for a fast smoke run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="metric names to run (default: all)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda: inputs as CUDA tensors (peak mem is host RSS)")
    args = ap.parse_args(argv)
    n, d, c, n_small = (4000, 256, 20, 1000) if args.quick else (20000, 1024, 100, 5000)
    import app.transferability as tr

    names = [m for m in tr.METRICS if not args.only or m in args.only]
    print(f"device {args.device}; N={n} D={d} C={c} (N={n_small} for {', '.join(sorted(SMALL_N))}); features float32, "
          f"source probs 1000 classes; median of {args.repeats} repeats (1 for slow ones); "
          "Gram = FᵀF float64 timed in the same process as each metric; peak mem = peak RSS increase in a fresh "
          "process")
    print(f"{'metric':24s} {'N':>6s} {'time s':>9s} {'gram s':>8s} {'ratio':>7s} {'peak MB':>8s}  "
          f"{'target':10s} load avg (1 min)")
    for name in names:
        size = n_small if name in SMALL_N else n
        t, gram_t, peak = measure(name, size, d, c, 1 if name in SLOW else args.repeats, args.device)
        ratio = t / gram_t
        target = ("ok" if ratio <= 3 else "MISS") + " (≤3×)" if name in TARGET_3X else "-"
        load = os.getloadavg()[0]
        print(f"{name:24s} {size:6d} {t:9.3f} {gram_t:8.3f} {ratio:7.2f} {peak:8.0f}  {target:10s} {load:.2f}",
              flush=True)


if __name__ == "__main__":
    main()
