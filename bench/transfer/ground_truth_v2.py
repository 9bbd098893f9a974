"""Ground truth v2 of the transfer benchmark (PROTOCOL.md, "v2"): a learning-rate grid, a budget long enough
for scratch to converge, 5 paired seeds, every (source, target) at the last layer, and cut-point truth.

    python -m bench.transfer.ground_truth_v2                     # everything, 2 processes, resumable
    python -m bench.transfer.ground_truth_v2 --plan              # what is left to run, and a cost estimate
    python -m bench.transfer.ground_truth_v2 --summarise         # rewrite the summaries from runs_v2.csv

Units of work ("jobs") are one (target, source, layer, arm); a job trains **seed 0 at every learning rate of
its arm's grid**, chooses the rate on seed 0's inner validation split (best validation accuracy of the best
checkpoint; ties: the higher mean validation accuracy over the second half of the curve, then the smaller
rate), and trains seeds 1–4 at the chosen rate. Every run is one row of ``runs_v2.csv`` keyed by
``(target, source, layer, arm, seed, lr)``; its validation curve is one line of ``curves_v2.jsonl``. A job's
rows are appended when the job finishes, so an interrupted run loses at most the jobs in flight, and running
the command again continues from the rows already written.

Arms go through the probe runner's single (arm, seed) unit (``app.probes.run_arm``) with a one-rate
budget, so the benchmark trains exactly as the service does: ``finetune`` (pretrained trunk + fresh head),
``linear`` (frozen trunk, head on cached embeddings), ``scratch`` (same architecture freshly initialised;
one per architecture and target, shared by its sources, written with ``source = "scratch:<arch>"``).
Cut-point jobs fine-tune the trunk truncated at every tap of every source (targets with ``cut_points``);
taps whose truncated trunks are the same network (same parameters, same features) are trained once and
recorded in ``taps_v2.csv``.

This module owns the measurement and the per-pair summaries (``ground_truth_v2.csv``,
``cut_points_v2.csv``); the evaluation of rankings against them lives in ``bench.transfer.evaluate``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from scipy import stats

from app.ranking.benchmark import digest_files, read_rows  # noqa: F401 - one CSV reader and digest, re-exported

HERE = Path(__file__).resolve().parent
SEEDS = (0, 1, 2, 3, 4)
TUNE_SEED = 0
LR_GRID = (1e-3, 3e-3, 1e-2)  # finetune and scratch (AdamW)
LINEAR_LR_GRID = (3e-3, 1e-2, 3e-2)  # the head alone on frozen features
# the step budget grows with the training set so that every arm sees >= 25 epochs (scratch converges: the
# "Does scratch converge?" table of RESULTS.md); targets at or below SMALL_TARGET images get STEPS_SMALL,
# at or below MEDIUM_TARGET STEPS_MEDIUM, above it STEPS_LARGE
SMALL_TARGET, MEDIUM_TARGET = 120, 250
STEPS_SMALL, STEPS_MEDIUM, STEPS_LARGE = 160, 320, 640
EVAL_EVERY = {STEPS_SMALL: 20, STEPS_MEDIUM: 20, STEPS_LARGE: 40}
BATCH_SIZE = 16  # what two shared cores allow: the per-step cost is linear in the batch
RUN_ORDER = ("gratings_4", "gratings_8", "counting_6", "digits_10shot", "counting", "textures", "shapes_new",
             "shapes_small", "digits_colour", "textures_40")
ALPHA = 0.05
DELTA = 0.01  # practical margin: one accuracy point
STRONG = 0.05

RUN_FIELDS = ("target", "role", "source", "arch", "layer", "depth", "arm", "seed", "lr", "tune", "chosen",
              "val_best", "val_tail", "best_step", "steps", "budget_steps", "accuracy", "macro_f1", "n_train",
              "n_val", "n_test", "seconds")
GT_FIELDS = ("target", "role", "source", "arch", "layer", "n_seeds", "finetune", "finetune_sd", "finetune_lr",
             "linear", "linear_sd", "linear_lr", "scratch", "scratch_sd", "scratch_lr", "delta", "delta_sd",
             "p_less_t", "p_greater_t", "p_practical_negative", "label", "practical_negative")
CUT_FIELDS = ("target", "role", "source", "arch", "layer", "depth", "last_layer", "duplicate_of", "n_seeds",
              "finetune", "finetune_sd", "finetune_lr")
TAP_FIELDS = ("source", "arch", "layer", "depth", "dim", "params", "duplicate_of")


@dataclass(frozen=True)
class Job:
    """One (target, source, layer, arm): seed 0 over the grid, then seeds 1–4 at the chosen rate."""

    target: str
    source: str  # a zoo id, or "scratch:<arch>"
    layer: str
    arm: str
    model: str  # the zoo id whose adapter trains it (scratch: a representative source of the architecture)
    priority: int  # 0 fit targets, 1 hold-outs, 2 cut points, 3 linear probes

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.target, self.source, self.layer, self.arm)


def arch_of(source_id: str) -> str:
    """``zoo:cnn_small.digits`` → ``cnn_small``; ``scratch:cnn_small`` → ``cnn_small``."""
    if source_id.startswith("scratch:"):
        return source_id.split(":", 1)[1]
    if not source_id.startswith("zoo:") or "." not in source_id:
        raise ValueError(f"not a zoo source id: {source_id!r}")
    return source_id.split(":", 1)[1].split(".", 1)[0]


def steps_for(n_train: int) -> int:
    """The step budget of a target: long enough for scratch to converge (checked by ``convergence``)."""
    if n_train < 1:
        raise ValueError(f"a target needs training images, got {n_train}")
    if n_train <= SMALL_TARGET:
        return STEPS_SMALL
    return STEPS_MEDIUM if n_train <= MEDIUM_TARGET else STEPS_LARGE


def budget(steps: int, lr: float):
    from app.probes import ProbeBudget

    if steps not in EVAL_EVERY:
        raise ValueError(f"steps must be one of {sorted(EVAL_EVERY)}, got {steps}")
    # one rate per call (the grid is walked here, so every rate's test accuracy is recorded); no early
    # stopping: patience beyond the budget, the best checkpoint on the inner split is kept
    return ProbeBudget(steps=steps, batch_size=BATCH_SIZE, lr_grid=(lr,), linear_lr_grid=(lr,), weight_decay=1e-4,
                       eval_every=EVAL_EVERY[steps], patience=10_000, val_fraction=0.2, amp=False)


def grid(arm: str) -> tuple[float, ...]:
    return LINEAR_LR_GRID if arm == "linear" else LR_GRID


def tail_mean(curve: Sequence[tuple[int, float]], fraction: float = 0.5) -> float:
    """Mean validation metric over the last ``fraction`` of the steps (the tie-break of the rate choice)."""
    pts = [(s, v) for s, v in curve if v is not None]
    if not pts:
        return float("nan")
    last = pts[-1][0]
    tail = [v for s, v in pts if s >= (1 - fraction) * last]
    return float(np.mean(tail))


def choose_lr(tune_rows: Sequence[dict]) -> float:
    """The rate of seed 0's runs with the best inner-validation accuracy; ties: higher ``val_tail``, then
    the smaller rate. Never looks at test accuracy."""
    if not tune_rows:
        raise ValueError("no tuning runs to choose a learning rate from")
    return float(min(tune_rows, key=lambda r: (-float(r["val_best"]), -float(r["val_tail"]), float(r["lr"])))["lr"])


# -- the worker side ----------------------------------------------------------------------------------------
@cache
def _task_data(name: str):
    from app.probes import ProbeData
    from app.zoo import images as im
    from bench.transfer.targets import target

    task = target(name)
    xtr, ytr, xte, yte = task.load()
    train = ProbeData(im.to_model_input(xtr), ytr, task_type="classification", num_classes=task.classes)
    test = ProbeData(im.to_model_input(xte), yte, task_type="classification", num_classes=task.classes)
    return task, train, test


@cache
def _adapter(models_dir: str, source_id: str):
    from app.backbones.catalogue import Catalogue, LoadContext, create_adapter

    return create_adapter(Catalogue(Path(models_dir)).get(source_id), LoadContext(models_dir=Path(models_dir)),
                          device="cpu")


@cache
def _linear_cache(models_dir: str, source_id: str, layer: str, target_name: str):
    from app.probes.runner import frozen_features

    _, train, _ = _task_data(target_name)
    return frozen_features(_adapter(models_dir, source_id), layer, train, device="cpu", amp=False)


def _one_run(job: Job, models_dir: str, seed: int, lr: float, tune: bool) -> tuple[dict, dict]:
    from app.probes import run_arm

    task, train, test = _task_data(job.target)
    adapter = _adapter(models_dir, job.model)
    steps = steps_for(len(train))
    cached = _linear_cache(models_dir, job.model, job.layer, job.target) if job.arm == "linear" else None
    run = run_arm(adapter, job.layer, train, job.arm, seed, budget=budget(steps, lr), device="cpu",
                  cached_embeddings=cached, eval_data=test, backbone_id=job.source)
    curve = [(int(c["step"]), c["val_metric"]) for c in run.curve]
    val_best = run.details["lr_search"][0]["best_metric"]
    row = {"target": job.target, "role": task.role, "source": job.source, "arch": arch_of(job.source),
           "layer": job.layer, "depth": adapter.spec.layer(job.layer).depth, "arm": job.arm, "seed": seed,
           "lr": lr, "tune": int(tune), "chosen": 0, "val_best": round(float(val_best), 5),
           "val_tail": round(tail_mean(curve), 5), "best_step": run.details["best_step"], "steps": run.steps,
           "budget_steps": steps, "accuracy": round(float(run.metric), 5),
           "macro_f1": round(float(run.details["scores"].get("macro_f1", float("nan"))), 5),
           "n_train": run.details["n_train"], "n_val": run.details["n_val"], "n_test": len(test),
           "seconds": round(run.seconds, 3)}
    line = {k: row[k] for k in ("target", "source", "layer", "arm", "seed", "lr")}
    line["curve"] = [[s, None if v is None else round(float(v), 4)] for s, v in curve]
    return row, line


def run_job(args: tuple[Job, str, tuple[int, ...]]) -> tuple[Job, list[dict], list[dict], float]:
    """Train one job (the worker entry point); returns its rows and curve lines, not yet written."""
    from app.zoo.recipe import deterministic

    job, models_dir, seeds = args
    started = time.perf_counter()
    rows, lines = [], []
    with deterministic(1):
        for lr in grid(job.arm):
            row, line = _one_run(job, models_dir, TUNE_SEED, lr, True)
            rows.append(row)
            lines.append(line)
        chosen = choose_lr(rows)
        for row in rows:
            row["chosen"] = int(row["lr"] == chosen)
        for seed in seeds:
            if seed == TUNE_SEED:
                continue
            row, line = _one_run(job, models_dir, seed, chosen, False)
            row["chosen"] = 1
            rows.append(row)
            lines.append(line)
    return job, rows, lines, time.perf_counter() - started


def _own_session() -> None:
    """Each worker leads its own session: with the kernel's session autogroups (``sched_autogroup``) CPU is
    shared between sessions, so a worker shares the machine like any other command instead of splitting
    its launcher's share (``nice`` only orders processes within one session)."""
    with contextlib.suppress(OSError):
        os.setsid()


# -- planning -----------------------------------------------------------------------------------------------
def plan_jobs(models_dir: Path, target_names: Iterable[str], source_ids: Sequence[str],
              cut_points: bool = True) -> tuple[list[Job], list[dict]]:
    """Every job of the protocol — fine-tune and scratch on fit targets first, then on the hold-out targets,
    then cut points, then every linear probe (the rankings do not read them) — and the tap table."""
    from bench.transfer.targets import target

    by_arch: dict[str, str] = {}
    for sid in sorted(source_ids):
        by_arch.setdefault(arch_of(sid), sid)
    taps = tap_table(models_dir, source_ids)
    last = {}
    for t in taps:
        last[t["source"]] = t["layer"]  # taps are in depth order
    jobs: list[Job] = []
    for name in target_names:
        task = target(name)
        pr = 0 if task.role == "fit" else 1
        for arch, model in sorted(by_arch.items()):
            jobs.append(Job(name, f"scratch:{arch}", last[model], "scratch", model, pr))
        for sid in source_ids:
            jobs.append(Job(name, sid, last[sid], "finetune", sid, pr))
            jobs.append(Job(name, sid, last[sid], "linear", sid, 3))
    if cut_points:
        for name in target_names:
            if not target(name).cut_points:
                continue
            for t in taps:
                if t["layer"] != last[t["source"]] and not t["duplicate_of"]:
                    jobs.append(Job(name, t["source"], t["layer"], "finetune", t["source"], 2))
    # within a priority, targets where scratch is strong (negative transfer can show) run first, so a run
    # cut short by the machine still leaves whole targets behind
    order = {name: i for i, name in enumerate(RUN_ORDER)}
    jobs.sort(key=lambda j: (j.priority, order.get(j.target, len(order))))
    return jobs, taps


def tap_table(models_dir: Path, source_ids: Sequence[str]) -> list[dict]:
    """Every tap of every source in depth order; ``duplicate_of`` names an earlier tap whose truncated trunk
    has the same parameters and gives the same features (fine-tuning it would repeat that tap's runs)."""
    import torch

    from app.zoo.recipe import deterministic

    probe = torch.Generator().manual_seed(5)
    x = torch.rand(8, 3, 32, 32, generator=probe) * 2 - 1
    rows = []
    with deterministic(1):
        for sid in source_ids:
            adapter = _adapter(str(models_dir), sid)
            seen: dict[tuple, str] = {}
            found = []
            for layer in reversed(adapter.layers()):  # the deepest of identical taps is the one trained
                trunk = adapter.trunk(layer, pretrained=True, seed=0).eval()
                with torch.no_grad():
                    feats = trunk(x).numpy()
                n_params = sum(p.numel() for p in trunk.parameters())
                sig = (n_params, feats.shape, hashlib.sha1(np.round(feats, 5).tobytes()).hexdigest())
                found.append({"source": sid, "arch": arch_of(sid), "layer": layer,
                              "depth": adapter.spec.layer(layer).depth, "dim": adapter.spec.layer(layer).dim,
                              "params": n_params, "duplicate_of": seen.get(sig, "")})
                seen.setdefault(sig, layer)
            rows.extend(reversed(found))
    return rows


# -- storage ------------------------------------------------------------------------------------------------
def run_key(row: dict) -> tuple[str, str, str, str, int, float]:
    return (row["target"], row["source"], row["layer"], row["arm"], int(row["seed"]), float(row["lr"]))


def done_jobs(rows: Iterable[dict], seeds: Sequence[int]) -> set[tuple[str, str, str, str]]:
    """Jobs whose every seed has a chosen run and whose seed 0 covers the grid."""
    chosen: dict[tuple, set[int]] = defaultdict(set)
    tuned: dict[tuple, set[float]] = defaultdict(set)
    for r in rows:
        k = (r["target"], r["source"], r["layer"], r["arm"])
        if int(r["chosen"]):
            chosen[k].add(int(r["seed"]))
        if int(r["tune"]):
            tuned[k].add(float(r["lr"]))
    return {k for k, s in chosen.items() if set(seeds) <= s and set(grid(k[3])) <= tuned[k]}


def append_rows(path: Path, rows: list[dict], fields: Sequence[str]) -> None:
    new = not path.is_file() or path.stat().st_size == 0
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        if new:
            w.writeheader()
        w.writerows(rows)
        fh.flush()
        os.fsync(fh.fileno())


def write_csv(path: Path, rows: list[dict], fields: Sequence[str]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def current(rows: Iterable[dict]) -> list[dict]:
    """The rows measured with the current step budget of their target (a run at another budget — e.g.
    before ``STEPS_LARGE`` was raised — is history, not truth: its job counts as not done)."""
    return [r for r in rows if int(r["budget_steps"]) == steps_for(int(r["n_train"]) + int(r["n_val"]))]


def dedupe(rows: list[dict]) -> list[dict]:
    """One row per key (the last written wins: a job redone after an interruption rewrites its rows)."""
    out: dict[tuple, dict] = {}
    for r in rows:
        out[run_key(r)] = r
    return list(out.values())


# -- summaries ----------------------------------------------------------------------------------------------
def practical_negative_p(delta: np.ndarray, margin: float = DELTA) -> float:
    """One-sided one-sample t-test of H0: mean Δ ≥ −margin against H1: mean Δ < −margin (Δ per paired seed,
    fine-tune − scratch). Identical Δ on every seed: 0 if it is below −margin, else 1."""
    d = np.asarray(delta, dtype=float)
    if d.ndim != 1 or len(d) < 2 or not np.all(np.isfinite(d)):
        raise ValueError(f"need >= 2 finite paired differences, got {d!r}")
    if np.ptp(d) == 0:
        return float(d[0] >= -margin)
    return float(stats.ttest_1samp(d + margin, 0.0, alternative="less").pvalue)


def _chosen(rows: Iterable[dict]) -> dict[tuple, dict[int, dict]]:
    by: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for r in rows:
        if int(r["chosen"]):
            by[(r["target"], r["source"], r["layer"], r["arm"])][int(r["seed"])] = r
    return by


def _sd(x: np.ndarray) -> float:
    return float(x.std(ddof=1)) if len(x) > 1 else 0.0


def summarise(rows: list[dict], taps: list[dict]) -> tuple[list[dict], list[dict]]:
    """``ground_truth_v2.csv`` rows (per target × source, last layer) and ``cut_points_v2.csv`` rows (per
    target × source × tap, duplicates filled from the tap they repeat)."""
    by = _chosen(rows)
    from bench.transfer.targets import TARGETS

    roles = {r["target"]: r["role"] for r in rows}  # as recorded when the runs were made ...
    roles.update({t.name: t.role for t in TARGETS if t.name in roles})  # ... unless the protocol has moved on
    last = {}
    for t in taps:
        last[t["source"]] = t["layer"]
    gt = []
    for (tgt, src, layer, arm), seeds in sorted(by.items()):
        if arm != "finetune" or layer != last.get(src):
            continue
        scratch = by.get((tgt, f"scratch:{arch_of(src)}", last_scratch_layer(by, tgt, arch_of(src)), "scratch"))
        linear = by.get((tgt, src, layer, "linear"), {})
        if not scratch:
            continue
        common = sorted(set(seeds) & set(scratch))
        if len(common) < 2:
            continue
        ft = np.array([float(seeds[s]["accuracy"]) for s in common])
        sc = np.array([float(scratch[s]["accuracy"]) for s in common])
        lin = np.array([float(linear[s]["accuracy"]) for s in sorted(linear)]) if linear else np.array([np.nan])
        d = ft - sc
        row = {"target": tgt, "role": roles[tgt], "source": src, "arch": arch_of(src), "layer": layer,
               "n_seeds": len(common), "finetune": ft.mean(), "finetune_sd": _sd(ft),
               "finetune_lr": float(seeds[TUNE_SEED]["lr"]) if TUNE_SEED in seeds else "",
               "linear": float(lin.mean()), "linear_sd": _sd(lin),
               "linear_lr": float(linear[TUNE_SEED]["lr"]) if TUNE_SEED in linear else "",
               "scratch": sc.mean(), "scratch_sd": _sd(sc),
               "scratch_lr": float(scratch[TUNE_SEED]["lr"]) if TUNE_SEED in scratch else "",
               "delta": d.mean(), "delta_sd": _sd(d)}
        if np.ptp(d) == 0:
            row["p_less_t"], row["p_greater_t"] = float(d[0] >= 0), float(d[0] <= 0)
        else:
            row["p_less_t"] = float(stats.ttest_rel(ft, sc, alternative="less").pvalue)
            row["p_greater_t"] = float(stats.ttest_rel(ft, sc, alternative="greater").pvalue)
        row["p_practical_negative"] = practical_negative_p(d)
        if row["p_less_t"] < ALPHA:
            row["label"] = "negative"
        elif row["p_greater_t"] < ALPHA:
            row["label"] = "strong_positive" if row["delta"] >= STRONG else "positive"
        else:
            row["label"] = "none"
        row["practical_negative"] = int(row["p_practical_negative"] < ALPHA)
        gt.append({k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()})
    cut = []
    cut_targets = {k[0] for k, v in by.items() if k[3] == "finetune" and k[2] != last.get(k[1])}
    for tgt in sorted(cut_targets):
        for t in taps:
            src, layer = t["source"], t["layer"]
            real = t["duplicate_of"] or layer
            seeds = by.get((tgt, src, real, "finetune"))
            if not seeds:
                continue
            ft = np.array([float(seeds[s]["accuracy"]) for s in sorted(seeds)])
            row = {"target": tgt, "role": roles[tgt], "source": src, "arch": t["arch"], "layer": layer,
                   "depth": t["depth"], "last_layer": int(layer == last[src]), "duplicate_of": t["duplicate_of"],
                   "n_seeds": len(ft), "finetune": ft.mean(), "finetune_sd": _sd(ft),
                   "finetune_lr": float(seeds[TUNE_SEED]["lr"]) if TUNE_SEED in seeds else ""}
            cut.append({k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()})
    return gt, cut


def last_scratch_layer(by: dict, tgt: str, arch: str) -> str:
    layers = {k[2] for k in by if k[0] == tgt and k[1] == f"scratch:{arch}"}
    if len(layers) > 1:
        raise ValueError(f"scratch:{arch} on {tgt} has runs at several layers: {sorted(layers)}")
    return next(iter(layers), "")


def write_summaries(out: Path) -> tuple[list[dict], list[dict]]:
    rows = current(dedupe(read_rows(out / "runs_v2.csv")))
    taps = read_rows(out / "taps_v2.csv")
    gt, cut = summarise(rows, taps)
    write_csv(out / "ground_truth_v2.csv", gt, GT_FIELDS)
    write_csv(out / "cut_points_v2.csv", cut, CUT_FIELDS)
    return gt, cut


# -- the command --------------------------------------------------------------------------------------------
def _estimate(job: Job, n_train: int) -> float:
    """Rough seconds of one job on one core (measured in the pilot: ~15 ms per step of a full trunk)."""
    steps = steps_for(n_train)
    runs = len(grid(job.arm)) + len(SEEDS) - 1
    per_step = 0.0015 if job.arm == "linear" else 0.016 * BATCH_SIZE / 32
    return runs * steps * per_step


def main(argv: list[str] | None = None) -> None:
    import torch

    from app.backbones.catalogue import Catalogue
    from bench.transfer.targets import TARGETS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models-dir", default="models")
    p.add_argument("--out", default=str(HERE))
    p.add_argument("--workers", type=int, default=2, help="processes, one thread each")
    p.add_argument("--targets", default=",".join(t.name for t in TARGETS))
    p.add_argument("--sources", default="", help="comma-separated ids (default: every zoo card in --models-dir)")
    p.add_argument("--no-cut-points", action="store_true", help="skip the cut-point jobs")
    p.add_argument("--max-jobs", type=int, default=None, help="stop after this many jobs (a pilot)")
    p.add_argument("--plan", action="store_true", help="print what is left and a cost estimate, run nothing")
    p.add_argument("--summarise", action="store_true", help="only rewrite the summaries from runs_v2.csv")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.summarise:
        gt, cut = write_summaries(out)
        print(f"{len(gt)} pairs, {len(cut)} cut-point rows -> {out}")
        return
    if a.workers < 1:
        p.error(f"--workers must be >= 1, got {a.workers}")
    sources = a.sources.split(",") if a.sources else sorted(
        s.id for s in Catalogue(Path(a.models_dir)).builtins.values() if s.family == "zoo")
    jobs, taps = plan_jobs(Path(a.models_dir), a.targets.split(","), sources, cut_points=not a.no_cut_points)
    write_csv(out / "taps_v2.csv", taps, TAP_FIELDS)
    existing = current(dedupe(read_rows(out / "runs_v2.csv")))
    done = done_jobs(existing, SEEDS)
    todo = [j for j in jobs if j.key not in done]
    if a.max_jobs is not None:
        todo = todo[:a.max_jobs]
    n_train = {name: len(_task_data(name)[1]) for name in {j.target for j in todo}}
    est = sum(_estimate(j, n_train[j.target]) for j in todo)
    print(f"{len(jobs)} jobs in the protocol, {len(done & {j.key for j in jobs})} done, {len(todo)} to run "
          f"(~{est / 60:.0f} core-minutes, ~{est / 60 / a.workers:.0f} min on {a.workers} processes)", flush=True)
    if a.plan or not todo:
        if not a.plan:
            write_summaries(out)
        return
    started, wall = time.time(), time.perf_counter()
    busy = 0.0
    args = [(j, a.models_dir, SEEDS) for j in todo]
    with contextlib.ExitStack() as stack:
        if a.workers == 1:  # in this process (tests, debugging): no pool
            results: Iterable = map(run_job, args)
        else:
            pool = stack.enter_context(mp.get_context("spawn").Pool(a.workers, initializer=_own_session))
            results = pool.imap_unordered(run_job, args)
        for i, (job, rows, lines, secs) in enumerate(results, start=1):
            append_rows(out / "runs_v2.csv", rows, RUN_FIELDS)
            with open(out / "curves_v2.jsonl", "a") as fh:
                fh.writelines(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
            busy += secs
            chosen = [r for r in rows if int(r["chosen"])]
            acc = np.mean([float(r["accuracy"]) for r in chosen])
            print(f"[{i}/{len(todo)} {time.perf_counter() - wall:7.0f}s] {job.target:<14} {job.source:<32} "
                  f"{job.layer:<11} {job.arm:<8} lr {chosen[0]['lr']:<6} acc {acc:.3f}  {secs:5.1f}s", flush=True)
    gt, cut = write_summaries(out)
    session = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
               "wall_seconds": round(time.perf_counter() - wall, 1), "busy_seconds": round(busy, 1),
               "jobs": len(todo), "workers": a.workers, "threads_per_worker": 1,
               "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
               "cpu_count": os.cpu_count(), "argv": sys.argv[1:]}
    meta_path = out / "ground_truth_v2.meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {"sessions": []}
    meta["sessions"].append(session)
    meta["protocol"] = {"seeds": list(SEEDS), "tune_seed": TUNE_SEED, "lr_grid": list(LR_GRID),
                        "linear_lr_grid": list(LINEAR_LR_GRID), "steps": {f"<= {SMALL_TARGET} train images":
                        STEPS_SMALL, f"<= {MEDIUM_TARGET}": STEPS_MEDIUM, "more": STEPS_LARGE}, "eval_every": {str(k): v for k, v in EVAL_EVERY.items()},
                        "batch_size": BATCH_SIZE, "weight_decay": 1e-4, "val_fraction": 0.2, "early_stopping": "none",
                        "alpha": ALPHA, "delta": DELTA}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    labels = defaultdict(int)
    for row in gt:
        labels[row["label"]] += 1
    print(f"{len(gt)} pairs ({dict(labels)}; practical negatives {sum(r['practical_negative'] for r in gt)}), "
          f"{len(cut)} cut-point rows in {session['wall_seconds']:.0f}s -> {out}")


if __name__ == "__main__":
    main()
