"""The three figures of a ranking: the ranked table with rank intervals, per-layer scores per backbone,
and probe learning curves per arm with the verdict."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers and workers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

PLOT_FORMATS = {"png": "image/png", "svg": "image/svg+xml"}
VERDICT_COLOURS = {
    "positive": "#2e7d32",
    "no_benefit": "#9e9e9e",
    "negative_transfer": "#c62828",
    "inconclusive": "#f9a825",
    None: "#1565c0",
}
ARM_COLOURS = {"finetune": "#1565c0", "scratch": "#6d4c41", "linear": "#2e7d32", "reference": "#8e24aa"}
_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P")


def series_styles(n: int) -> list[dict[str, Any]]:
    """``n`` pairwise-distinct line styles: tab10 colours up to 10 series, tab20 up to 20, then tab20 again
    with another dash pattern (and past 80, another marker), so no two backbones share a line's look."""
    palette = plt.get_cmap("tab10" if n <= 10 else "tab20")
    k = palette.N
    return [{"color": palette(i % k), "linestyle": _LINESTYLES[(i // k) % len(_LINESTYLES)],
             "marker": _MARKERS[(i // (k * len(_LINESTYLES))) % len(_MARKERS)]} for i in range(n)]


def render(fig: Figure, fmt: str) -> bytes:
    if fmt not in PLOT_FORMATS:
        raise ValueError(f"plot format must be one of {sorted(PLOT_FORMATS)}, got {fmt!r}")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, bbox_inches="tight", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _empty(message: str) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return fig


def ranking_figure(rows: Sequence[Mapping[str, Any]], title: str = "Ranking") -> Figure:
    """Rank per backbone (1 = best) with its bootstrap interval; bars coloured by probe verdict."""
    if not rows:
        return _empty("no ranked backbones yet")
    rows = sorted(rows, key=lambda r: r["rank"])
    names = [f"{r['backbone_id']}  [{r['best_layer']}]" for r in rows]
    ranks = np.array([r["rank"] for r in rows], dtype=float)
    lows = np.array([(r.get("rank_ci") or (r["rank"], r["rank"]))[0] for r in rows], dtype=float)
    highs = np.array([(r.get("rank_ci") or (r["rank"], r["rank"]))[1] for r in rows], dtype=float)
    verdicts = [(r.get("verdict") or {}).get("verdict") for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    y = np.arange(len(rows))
    ax.hlines(y, lows, highs, color="#888", lw=3, alpha=0.6, label="95% bootstrap rank interval")
    ax.scatter(ranks, y, c=[VERDICT_COLOURS.get(v, "#1565c0") for v in verdicts], s=60, zorder=3)
    ax.set_yticks(y, names)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("rank (1 = best)")
    ax.set_xlim(0.5, max(highs.max(), ranks.max()) + 0.5)
    for verdict, colour in VERDICT_COLOURS.items():
        if verdict in verdicts:
            ax.scatter([], [], c=colour, label=verdict or "not probed")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return fig


def layers_figure(rows: Sequence[Mapping[str, Any]], title: str = "Score per layer") -> Figure:
    """Per-layer aggregate score of each backbone against relative depth; the chosen layer is marked."""
    usable = [r for r in rows if r.get("layers")]
    if not usable:
        return _empty("no per-layer scores")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r, style in zip(usable, series_styles(len(usable)), strict=True):
        layers = r["layers"]
        names = list(layers)
        depth = [layers[n].get("depth", i / max(1, len(names) - 1)) for i, n in enumerate(names)]
        score = [layers[n].get("aggregate", np.nan) for n in names]
        line, = ax.plot(depth, score, label=r["backbone_id"], **style)
        if r.get("best_layer") in layers:
            best = layers[r["best_layer"]]
            ax.scatter([best.get("depth", depth[-1])], [best.get("aggregate", np.nan)], s=160,
                       facecolors="none", edgecolors=line.get_color(), linewidths=2)
    ax.set_xlabel("relative depth of the cut (0 = input, 1 = last layer)")
    ax.set_ylabel("aggregate score within backbone (higher = better)")
    ax.set_title(title)
    if len(usable) > 10:  # a long legend goes beside the axes, in columns
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1), ncol=1 + (len(usable) - 1) // 20)
    else:
        ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return fig


def probes_figure(runs: Sequence[Mapping[str, Any]], verdicts: Mapping[str, Mapping[str, Any]],
                  title: str = "Probe learning curves") -> Figure:
    """Validation metric against step, mean ± SD over seeds, one panel per probed backbone."""
    by_backbone: dict[str, list[Mapping[str, Any]]] = {}
    for run in runs:
        by_backbone.setdefault(run["backbone_id"], []).append(run)
    if not by_backbone:
        return _empty("no probe runs")
    n = len(by_backbone)
    cols = min(3, n)
    rows_n = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.5 * cols, 3.4 * rows_n), squeeze=False)
    for ax, (backbone, bruns) in zip(axes.flat, sorted(by_backbone.items()), strict=False):
        arms: dict[str, list[Sequence[Mapping[str, Any]]]] = {}
        for run in bruns:
            if run.get("curve"):
                arms.setdefault(run["arm"], []).append(run["curve"])
        for arm, curves in sorted(arms.items()):
            steps = sorted({p["step"] for c in curves for p in c if p.get("val_metric") is not None})
            if not steps:
                continue
            grid = np.full((len(curves), len(steps)), np.nan)
            for i, c in enumerate(curves):
                lookup = {p["step"]: p.get("val_metric") for p in c}
                grid[i] = [lookup.get(s, np.nan) if lookup.get(s) is not None else np.nan for s in steps]
            with np.errstate(all="ignore"):
                mean, sd = np.nanmean(grid, axis=0), np.nanstd(grid, axis=0)
            colour = ARM_COLOURS.get(arm)
            ax.plot(steps, mean, label=f"{arm} (n={len(curves)})", color=colour)
            ax.fill_between(steps, mean - sd, mean + sd, alpha=0.2, color=colour)
        verdict = verdicts.get(backbone, {})
        label = verdict.get("verdict", "no verdict")
        delta = verdict.get("delta_mean")
        ax.set_title(f"{backbone}\n{label}" + (f"  Δ={delta:+.3f}" if delta is not None else ""), fontsize=9,
                     color=VERDICT_COLOURS.get(verdict.get("verdict"), "black"))
        ax.set_xlabel("step")
        ax.set_ylabel("validation metric")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
