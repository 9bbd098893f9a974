"""Measure the transfer ground truth: for every (zoo source, target, last layer) the fine-tune and linear-probe
test accuracy over paired seeds, and the same architecture trained from scratch with the same recipe.

    python -m bench.transfer.ground_truth                # the full protocol (PROTOCOL.md), 2 processes
    python -m bench.transfer.ground_truth --seeds 2 --steps 20 --targets digits_10shot   # a quick look

Writes ``runs.csv`` (one row per source × target × arm × seed) and ``ground_truth.csv`` (one row per
source × target: means, paired Δ = fine-tune − scratch, one-sided paired tests, the derived label).
Training goes through the probe runner (``app.probes.run_probe``), so the benchmark measures the same
arms the service runs, with a longer budget.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
ALPHA = 0.05
STRONG = 0.05  # a positive pair is "strong" when fine-tune beats scratch by at least 5 accuracy points
RUN_FIELDS = ("target", "source", "arch", "layer", "arm", "seed", "accuracy", "macro_f1", "lr", "steps", "seconds")
GT_FIELDS = ("target", "source", "arch", "layer", "n_seeds", "finetune", "finetune_sd", "linear", "linear_sd",
             "scratch", "scratch_sd", "delta", "delta_sd", "p_less_t", "p_greater_t", "p_less_wilcoxon",
             "p_greater_wilcoxon", "label")


def budget(steps: int):
    from app.probes import ProbeBudget

    # one learning rate per arm (the CPU budget of the benchmark), early stopping on the inner split
    return ProbeBudget(steps=steps, batch_size=32, lr_grid=(3e-3,), linear_lr_grid=(1e-2,), weight_decay=1e-4,
                       eval_every=10, patience=3, val_fraction=0.2, amp=False)


def _target_runs(args: tuple[str, list[str], str, int, int]) -> list[dict]:
    """Every source on one target (one process: the scratch runs are shared per architecture)."""

    from app.backbones.catalogue import Catalogue, LoadContext, create_adapter
    from app.probes import RunCache, run_probe
    from app.zoo import images as im
    from app.zoo.recipe import deterministic
    from bench.transfer.targets import target

    target_name, source_ids, models_dir, seeds, steps = args
    task = target(target_name)
    xtr, ytr, xte, yte = task.load()
    xtr_t, xte_t = im.to_model_input(xtr), im.to_model_input(xte)
    catalogue = Catalogue(Path(models_dir))
    cache = RunCache()
    rows: list[dict] = []
    with deterministic(1):
        for source_id in source_ids:
            adapter = create_adapter(catalogue.get(source_id), LoadContext(models_dir=Path(models_dir)), device="cpu")
            layer = adapter.layers()[-1]
            started = time.perf_counter()
            result = run_probe(adapter, layer, xtr_t, ytr, seeds=list(range(seeds)),
                               budget=budget(steps), device="cpu", eval_data=xte_t, eval_labels=yte,
                               num_classes=task.classes, shared=cache)
            for run in result.runs:
                scores = run.details.get("scores", {})
                rows.append({"target": task.name, "source": source_id, "arch": source_id.split(":")[1].split(".")[0],
                             "layer": layer, "arm": run.arm, "seed": run.seed,
                             "accuracy": round(float(run.metric), 5), "macro_f1": round(float(scores.get("macro_f1", "nan")), 5),
                             "lr": run.details.get("lr"), "steps": run.steps, "seconds": run.seconds})
            print(f"{task.name:<14} {source_id:<32} {time.perf_counter() - started:6.1f}s", flush=True)
    return rows


def paired_label(finetune: np.ndarray, scratch: np.ndarray) -> dict:
    """Δ statistics and the derived label: ``negative`` when fine-tune is significantly below scratch
    (one-sided paired t-test, α = 0.05), ``positive`` when significantly above, ``strong_positive`` when
    also at least 5 points above, else ``none``."""
    d = finetune - scratch
    if len(d) < 2:
        raise ValueError(f"a paired test needs at least 2 seeds, got {len(d)}")
    out = {"delta": float(d.mean()), "delta_sd": float(d.std(ddof=1))}
    if np.ptp(d) == 0:
        # identical Δ on every seed: the t statistic is undefined; a non-zero constant is as sure as it gets
        p_less, p_greater = float(d[0] >= 0), float(d[0] <= 0)
        out.update(p_less_t=p_less, p_greater_t=p_greater, p_less_wilcoxon=p_less, p_greater_wilcoxon=p_greater)
    else:
        out["p_less_t"] = float(stats.ttest_rel(finetune, scratch, alternative="less").pvalue)
        out["p_greater_t"] = float(stats.ttest_rel(finetune, scratch, alternative="greater").pvalue)
        nz = d[d != 0]
        out["p_less_wilcoxon"] = float(stats.wilcoxon(nz, alternative="less").pvalue)
        out["p_greater_wilcoxon"] = float(stats.wilcoxon(nz, alternative="greater").pvalue)
    if out["p_less_t"] < ALPHA:
        out["label"] = "negative"
    elif out["p_greater_t"] < ALPHA:
        out["label"] = "strong_positive" if out["delta"] >= STRONG else "positive"
    else:
        out["label"] = "none"
    return out


def summarise(runs: list[dict]) -> list[dict]:
    by: dict[tuple[str, str], dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    meta: dict[tuple[str, str], dict] = {}
    for r in runs:
        key = (r["target"], r["source"])
        by[key][r["arm"]][int(r["seed"])] = float(r["accuracy"])
        meta[key] = {"arch": r["arch"], "layer": r["layer"]}
    rows = []
    for (tgt, src), arms in sorted(by.items()):
        seeds = sorted(set(arms["finetune"]) & set(arms["scratch"]))
        ft = np.array([arms["finetune"][s] for s in seeds])
        sc = np.array([arms["scratch"][s] for s in seeds])
        lin = np.array([arms["linear"][s] for s in sorted(arms["linear"])]) if arms.get("linear") else np.array([np.nan])
        row = {"target": tgt, "source": src, **meta[(tgt, src)], "n_seeds": len(seeds),
               "finetune": ft.mean(), "finetune_sd": ft.std(ddof=1) if len(ft) > 1 else 0.0,
               "linear": lin.mean(), "linear_sd": lin.std(ddof=1) if len(lin) > 1 else 0.0,
               "scratch": sc.mean(), "scratch_sd": sc.std(ddof=1) if len(sc) > 1 else 0.0, **paired_label(ft, sc)}
        rows.append({k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()})
    return rows


def write_csv(path: Path, rows: list[dict], fields: tuple[str, ...]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def main(argv: list[str] | None = None) -> None:
    from app.backbones.catalogue import Catalogue
    from bench.transfer.targets import TARGETS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models-dir", default="models")
    p.add_argument("--out", default=str(HERE))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--workers", type=int, default=2, help="processes, one thread each (targets run in parallel)")
    p.add_argument("--targets", default=",".join(t.name for t in TARGETS))
    p.add_argument("--sources", default="", help="comma-separated ids (default: every zoo card in --models-dir)")
    a = p.parse_args(argv)
    if a.seeds < 2:
        p.error(f"--seeds must be >= 2 for a paired test, got {a.seeds}")
    sources = a.sources.split(",") if a.sources else sorted(
        s.id for s in Catalogue(Path(a.models_dir)).builtins.values() if s.family == "zoo")
    jobs = [(t, sources, a.models_dir, a.seeds, a.steps) for t in a.targets.split(",")]
    started = time.perf_counter()
    with mp.get_context("spawn").Pool(a.workers) as pool:
        runs = [r for chunk in pool.imap(_target_runs, jobs) for r in chunk]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "runs.csv", runs, RUN_FIELDS)
    gt = summarise(runs)
    write_csv(out / "ground_truth.csv", gt, GT_FIELDS)
    labels = defaultdict(int)
    for row in gt:
        labels[row["label"]] += 1
    print(f"{len(runs)} runs, {len(gt)} pairs in {time.perf_counter() - started:.0f}s: {dict(labels)} -> {out}")


if __name__ == "__main__":
    main()
