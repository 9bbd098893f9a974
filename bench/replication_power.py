"""Which of ground truth v2's practical negatives can an error-controlled verdict find again?

    python -m bench.replication_power [--runs bench/replication/runs_gt_recipe.csv]

For every practical-negative pair of ``bench/transfer/ground_truth_v2.csv`` that the independent
replication (``python -m bench.probe_replication --recipe gt``: new seeds 100+, the truth's recipe) measured,
it prints the replicated paired Δ (fine-tune − scratch, paired by seed), its seed SD, the one-sided p of
Δ < −δ on the replication's seeds, and the paired seeds a one-sided test needs for 90 % power at the
replicated Δ: n = ((z₀.₉₅ + z₀.₉₀) · sd / (|Δ| − δ))² (a fixed-sample count; an anytime-valid design needs
more), ``inf`` where the replicated Δ is not below −δ. The totals bound the recall any error-controlled rule
can reach against these labels within a seed cap.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

from bench.transfer.ground_truth_v2 import arch_of

HERE = Path(__file__).resolve().parent
DELTA = 0.01
ALPHA = 0.05
POWER = 0.9


def seeds_for_power(mean: float, sd: float, delta: float = DELTA, alpha: float = ALPHA, power: float = POWER) -> float:
    """Paired seeds a one-sided t-approximation needs to show Δ < −δ with ``power`` when the true Δ is
    ``mean`` and the seed SD ``sd``; ``inf`` when ``mean >= −δ`` (no sample size shows it)."""
    if not (math.isfinite(mean) and math.isfinite(sd)) or sd < 0:
        raise ValueError(f"mean and sd must be finite, sd >= 0; got {mean}, {sd}")
    effect = -mean - delta
    if effect <= 0:
        return math.inf
    z = stats.norm.ppf(1 - alpha) + stats.norm.ppf(power)
    return max(2.0, math.ceil((z * sd / effect) ** 2))


def paired_deltas(rows: list[dict[str, str]]) -> dict[tuple[str, str], np.ndarray]:
    """``{(target, source): Δ per paired seed}`` from replication runs (scratch shared per architecture)."""
    ft: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    sc: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for r in rows:
        if r["arm"] == "finetune":
            ft[(r["target"], r["source"])][int(r["seed"])] = float(r["metric"])
        elif r["arm"] == "scratch":
            sc[(r["target"], r["arch"])][int(r["seed"])] = float(r["metric"])
    out = {}
    for (tgt, src), accs in ft.items():
        scratch = sc.get((tgt, arch_of(src)), {})
        seeds = sorted(set(accs) & set(scratch))
        if len(seeds) >= 2:
            out[(tgt, src)] = np.array([accs[s] - scratch[s] for s in seeds])
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default=str(HERE / "replication" / "runs_gt_recipe.csv"))
    p.add_argument("--truth", default=str(HERE / "transfer" / "ground_truth_v2.csv"))
    p.add_argument("--cap", type=int, default=20, help="the design's seed cap")
    a = p.parse_args(argv)
    with open(a.runs, newline="") as fh:
        deltas = paired_deltas(list(csv.DictReader(fh)))
    with open(a.truth, newline="") as fh:
        truth = [r for r in csv.DictReader(fh) if r["practical_negative"] == "1"]
    rows = []
    for g in truth:
        d = deltas.get((g["target"], g["source"]))
        if d is None:
            continue
        sd = float(d.std(ddof=1))
        pv = float(stats.ttest_1samp(d + DELTA, 0.0, alternative="less").pvalue)
        rows.append((g["target"], g["source"], float(g["delta"]), float(d.mean()), sd, len(d), pv,
                     seeds_for_power(float(d.mean()), sd)))
    print("| target | source | truth Δ (5 seeds) | replicated Δ | sd | seeds | p (Δ < −δ) | seeds for 90 % power |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for t, s, gd, m, sd, n, pv, need in sorted(rows, key=lambda r: r[3]):
        print(f"| {t} | {s} | {gd:+.3f} | {m:+.3f} | {sd:.3f} | {n} | {pv:.3f} | {need:.0f} |")
    k = len(rows)
    print(f"\n{k} practical negatives replicated; replicated Δ ≥ −δ: {sum(r[3] >= -DELTA for r in rows)}; "
          f"p < {ALPHA} on the replication's seeds: {sum(r[6] < ALPHA for r in rows)}; "
          f"detectable at 90 % power within {a.cap} seeds: {sum(r[7] <= a.cap for r in rows)} "
          f"(recall ceiling {sum(r[7] <= a.cap for r in rows) / k:.2f})" if k else "no replicated pair")


if __name__ == "__main__":
    main()
