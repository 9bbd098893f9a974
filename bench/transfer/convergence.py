"""Has scratch converged within ground truth v2's budget? The check of its validation learning curves.

    python -m bench.transfer.convergence             # prints the table, writes convergence_v2.png

For every **chosen** run (the rate each seed reports) of an arm, the curve (inner-validation accuracy at
every evaluation, ``curves_v2.jsonl``) is **flat over the last quarter** when the best accuracy reached in
the last quarter of the steps beats the best reached before it by at most ``tol`` = max(0.02, 1 / n_val)
(one validation image, or two points). The table gives, per target and arm, the share of flat runs and the
mean gain of the last quarter; the plot shows the mean scratch curve of each architecture per target.
``bench.transfer.evaluate`` puts the table into RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.transfer.ground_truth_v2 import current, dedupe, read_rows, run_key

HERE = Path(__file__).resolve().parent


def last_quarter_gain(curve: Sequence[tuple[int, float | None]]) -> float:
    """Best validation accuracy in the last quarter of the steps minus the best before it."""
    pts = [(int(s), float(v)) for s, v in curve if v is not None]
    if len(pts) < 2:
        raise ValueError(f"a curve needs at least 2 evaluated points, got {len(pts)}")
    end = pts[-1][0]
    cut = 0.75 * end
    before = [v for s, v in pts if s < cut]
    after = [v for s, v in pts if s >= cut]
    if not before or not after:
        raise ValueError("the curve has no points on one side of the last quarter")
    return max(after) - max(before)


def is_flat(curve: Sequence[tuple[int, float | None]], n_val: int) -> bool:
    if n_val < 1:
        raise ValueError(f"n_val must be >= 1, got {n_val}")
    return last_quarter_gain(curve) <= max(0.02, 1.0 / n_val) + 1e-9


def check(out: Path, plot: Path | None = None, arms: Sequence[str] = ("scratch", "finetune")) -> dict | None:
    """The table (markdown text and rows) over the chosen runs; ``None`` when no curve is stored yet."""
    curves_path = out / "curves_v2.jsonl"
    if not curves_path.is_file():
        return None
    runs = {run_key(r): r for r in current(dedupe(read_rows(out / "runs_v2.csv")))}
    last: dict[str, tuple[float, str]] = {}
    for t in read_rows(out / "taps_v2.csv"):
        if t["source"] not in last or float(t["depth"]) > last[t["source"]][0]:
            last[t["source"]] = (float(t["depth"]), t["layer"])
    stats: dict[tuple[str, str], list[tuple[bool, float]]] = defaultdict(list)
    mean_curves: dict[tuple[str, str], list[list[float]]] = defaultdict(list)
    with open(curves_path) as fh:
        for line in fh:
            d = json.loads(line)
            row = runs.get((d["target"], d["source"], d["layer"], d["arm"], int(d["seed"]), float(d["lr"])))
            if row is None or not int(row["chosen"]) or d["arm"] not in arms:
                continue
            if d["curve"] and int(d["curve"][-1][0]) != int(row["budget_steps"]):
                continue  # the curve of a run at an older budget (history), not of the current row
            if d["arm"] == "finetune" and row["layer"] != last.get(row["source"], (0, ""))[1]:
                continue  # cut-point runs are not the main fine-tune
            curve = [(s, v) for s, v in d["curve"]]
            stats[(d["target"], d["arm"])].append((is_flat(curve, int(row["n_val"])), last_quarter_gain(curve)))
            if d["arm"] == "scratch":
                mean_curves[(d["target"], row["arch"])].append([np.nan if v is None else v for _, v in curve])
    if not stats:
        return None
    rows = []
    for (tgt, arm), vals in sorted(stats.items()):
        flat = [f for f, _ in vals]
        gains = [g for _, g in vals]
        rows.append({"target": tgt, "arm": arm, "runs": len(vals), "flat": float(np.mean(flat)),
                     "mean_gain": float(np.mean(gains)), "max_gain": float(np.max(gains))})
    lines = ["Chosen runs whose inner-validation accuracy is flat over the last quarter of the budget (best in the "
             "last quarter ≤ best before it + max(0.02, 1/n_val)); gain = that difference.", "",
             "| target | arm | runs | flat | mean gain | max gain |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['target']} | {r['arm']} | {r['runs']} | {r['flat']:.0%} | {r['mean_gain']:+.3f} | "
                     f"{r['max_gain']:+.3f} |")
    if plot is not None and mean_curves:
        _plot(mean_curves, plot)
        lines += ["", f"Mean scratch validation curves per architecture and target: `{plot.name}`."]
    return {"rows": rows, "text": "\n".join(lines)}


def _plot(curves: dict[tuple[str, str], list[list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = sorted({t for t, _ in curves})
    cols = 4
    rows = int(np.ceil(len(targets) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, tgt in zip(axes.flat, targets, strict=False):
        for (t, arch), cs in sorted(curves.items()):
            if t != tgt:
                continue
            n = min(len(c) for c in cs)
            ax.plot(np.nanmean(np.array([c[:n] for c in cs]), axis=0), label=arch)
        ax.set_title(tgt)
        ax.set_xlabel("evaluation")
        ax.set_ylabel("inner-val accuracy")
        ax.set_ylim(0, 1)
    for ax in list(axes.flat)[len(targets):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default=str(HERE))
    a = p.parse_args(argv)
    result = check(Path(a.dir), plot=Path(a.dir) / "convergence_v2.png")
    print(result["text"] if result else "no curves yet")


if __name__ == "__main__":
    main()
