"""Reading a transfer benchmark's CSVs into the :class:`~app.ranking.fit.Benchmark` the fit learns from.

The files are those ``bench/transfer`` writes (PROTOCOL.md, v2), and the columns this module reads are the
whole contract:

* ``taps_v2.csv`` — ``source, layer, depth``: each source's taps (depth orders them; the deepest is its
  last layer);
* ``scores_v2.csv`` — ``target, source, layer, metric, value``: metric values from the real ranking job
  (an empty value is a metric that failed: NaN); head metrics (those that read the source head: LEEP,
  NCE, …) hold for every tap of their source;
* ``ground_truth_v2.csv`` — ``target, role, source, finetune``: measured fine-tune accuracy at the last
  layer (``role`` is ``fit`` or ``holdout``);
* ``cut_points_v2.csv`` — ``target, source, layer, finetune``: fine-tune accuracy of the trunk cut at a
  tap (a target counts as a cut-point target only when every tap of every source is there).

A target enters only when every source has its ground truth and its scores at the last layer (a
benchmark still being measured is read as far as it is complete). Pure Python and numpy.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.ranking.fit import Benchmark

FILES = ("taps_v2.csv", "scores_v2.csv", "ground_truth_v2.csv", "cut_points_v2.csv")
#: the files whose bytes the fitted default's ``ground_truth_digest`` covers
DIGEST_FILES = ("ground_truth_v2.csv", "cut_points_v2.csv", "scores_v2.csv")


@dataclass(frozen=True)
class LoadedBenchmark:
    bench: Benchmark
    roles: dict[str, str]  # target -> "fit" | "holdout"
    sources: list[str]
    incomplete: list[str]  # targets in the ground truth left out (a source's truth or scores missing)
    digest: str

    @property
    def fit_targets(self) -> list[str]:
        return [t for t in self.bench.targets if self.roles.get(t, "fit") == "fit"]

    @property
    def holdout_targets(self) -> list[str]:
        return [t for t in self.bench.targets if self.roles.get(t) == "holdout"]


def read_rows(path: Path) -> list[dict[str, str]]:
    if not Path(path).is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def digest_files(paths: Sequence[Path]) -> str:
    """sha256 over the named files' names and bytes."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).name.encode())
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def layer_table(rows: Sequence[Mapping[str, str]]) -> dict[str, list[str]]:
    """``{source: taps in depth order}``."""
    out: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for r in rows:
        out[r["source"]].append((float(r["depth"]), r["layer"]))
    return {s: [ly for _, ly in sorted(v)] for s, v in out.items()}


def load_scores(rows: Sequence[Mapping[str, str]], layers: Mapping[str, Sequence[str]],
                head_metrics: Sequence[str]) -> dict[tuple[str, str, str], dict[str, float]]:
    """``{(target, source, layer): {metric: value}}``; head metrics copied to every tap of their source."""
    out: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    head: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    heads = set(head_metrics)
    for r in rows:
        value = float(r["value"]) if r.get("value") not in ("", None) else math.nan
        if r["metric"] in heads:
            head[(r["target"], r["source"])][r["metric"]] = value
        else:
            out[(r["target"], r["source"], r["layer"])][r["metric"]] = value
    for (tgt, src), vals in head.items():
        for ly in layers.get(src, []):
            out[(tgt, src, ly)].update(vals)
    return dict(out)


def load_benchmark(directory: Path, direction: Callable[[str], bool | None],
                   head_metrics: Sequence[str], label_free: Sequence[str] = ()) -> LoadedBenchmark:
    """The complete part of the benchmark in ``directory``.

    Parameters
    ----------
    direction : metric name -> True (higher is better), False (lower), None (not a ranker: left out)
    head_metrics : metrics that read the source head (one value per source, valid at every tap)
    label_free : metrics that do not read the target's labels (``Benchmark.label_free``)
    """
    directory = Path(directory)
    missing = [f for f in FILES if not (directory / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{directory} lacks {missing} (the benchmark's CSVs: bench/transfer/PROTOCOL.md)")
    layers = layer_table(read_rows(directory / "taps_v2.csv"))
    if not layers:
        raise ValueError(f"{directory / 'taps_v2.csv'} lists no taps")
    sources = sorted(layers)
    gt_rows = read_rows(directory / "ground_truth_v2.csv")
    scores = load_scores(read_rows(directory / "scores_v2.csv"), layers, head_metrics)
    per: dict[str, set[str]] = defaultdict(set)
    roles: dict[str, str] = {}
    for r in gt_rows:
        per[r["target"]].add(r["source"])
        roles[r["target"]] = r.get("role") or "fit"
    complete, incomplete = [], []
    for tgt in sorted(per):
        ok = per[tgt] >= set(sources) and all((tgt, s, layers[s][-1]) in scores for s in sources)
        (complete if ok else incomplete).append(tgt)
    if not complete:
        raise ValueError(f"no target in {directory} has every source's ground truth and scores")
    truth = {(r["target"], r["source"]): float(r["finetune"]) for r in gt_rows
             if r["target"] in complete and r["source"] in layers}
    metrics = sorted({m for v in scores.values() for m in v})
    directions = {m: bool(d) for m in metrics if (d := direction(m)) is not None}
    cut_truth: dict[tuple[str, str, str], float] = {}
    cut_rows = read_rows(directory / "cut_points_v2.csv")
    n_taps = sum(len(v) for v in layers.values())
    for tgt in sorted({r["target"] for r in cut_rows} & set(complete)):
        rows = [r for r in cut_rows if r["target"] == tgt]
        if len(rows) == n_taps:
            cut_truth.update({(tgt, r["source"], r["layer"]): float(r["finetune"]) for r in rows})
    scores = {k: v for k, v in scores.items() if k[0] in complete}
    bench = Benchmark(scores=scores, directions=directions, layers=layers, truth=truth, cut_truth=cut_truth,
                      label_free=frozenset(label_free))
    return LoadedBenchmark(bench=bench, roles={t: roles[t] for t in complete}, sources=sources,
                           incomplete=incomplete, digest=digest_files([directory / f for f in DIGEST_FILES]))


def scored_everywhere(bench: Benchmark, metric: str, targets: Sequence[str]) -> bool:
    """The metric has a value at the last layer of at least two sources of every target (a metric that
    fails on a zoo — too few samples, too few dimensions — cannot be weighed by the fit)."""
    for t in targets:
        vals = [bench.scores[(t, s, bench.layers[s][-1])].get(metric, math.nan) for s in bench.sources(t)]
        if sum(1 for v in vals if math.isfinite(v)) < 2:
            return False
    return True


def merge(base: Benchmark, extra: Benchmark) -> Benchmark:
    """One benchmark holding both: ``extra``'s targets must be new; a source in both keeps ``base``'s taps."""
    clash = sorted(set(base.targets) & set(extra.targets))
    if clash:
        raise ValueError(f"targets in both benchmarks: {clash}")
    layers = {**extra.layers, **base.layers}
    return Benchmark(scores={**base.scores, **extra.scores}, directions={**extra.directions, **base.directions},
                     layers=layers, truth={**base.truth, **extra.truth},
                     cut_truth={**base.cut_truth, **extra.cut_truth},
                     label_free=base.label_free | extra.label_free)
