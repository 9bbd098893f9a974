"""How well does each metric rank the zoo's sources, against the measured fine-tune ground truth?

    python -m bench.transfer.evaluate            # reads ground_truth.csv, writes RESULTS.md

For every metric of ``app.transferability.METRICS`` (transferability, baselines, domain similarity, the
k-NN error and Fisher separability fields of ``task_difficulty``), the trivial baselines (source accuracy,
parameter count, random) and the ranking service's default aggregate (rank mean of the default metrics,
``app.ranking.aggregate``), per target and on average: weighted Kendall τ (``scipy.stats.weightedtau``,
hyperbolic weights on the top), Pearson r, and top-1 / top-3 hit rates (is the truly best source — highest
mean fine-tune accuracy — the metric's first / among its first three?).

Hook for the lead: :data:`EXTRA_ROWS` takes more ``name -> fn(ctx) -> {source: score}`` rankers (e.g. the
ranking job's own stored ranking), and :func:`verdict_rows` scores probe verdicts (precision / recall of
``negative_transfer`` against the ground-truth ``negative`` label) once verdicts are given to it.
"""

from __future__ import annotations

import argparse
import csv
import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
RANDOM_DRAWS = 200


@dataclass
class TargetContext:
    """What a ranker sees for one target: per source, target-train embeddings at the last layer, source
    probabilities on them, the source statistics at that layer, and the card."""

    target: str
    labels: np.ndarray
    features: dict[str, np.ndarray]
    source_probs: dict[str, np.ndarray]
    source_stats: dict[str, tuple[np.ndarray, np.ndarray]]
    cards: dict[str, object]


def embed_target(target_name: str, source_ids: list[str], models_dir: Path) -> TargetContext:
    import torch

    from app.backbones.catalogue import Catalogue, LoadContext, create_adapter
    from app.zoo import images as im
    from bench.transfer.targets import target

    xtr, ytr, _, _ = target(target_name).load()
    x = im.to_model_input(xtr)
    catalogue = Catalogue(models_dir)
    ctx = TargetContext(target_name, ytr, {}, {}, {}, {})
    for sid in source_ids:
        spec = catalogue.get(sid)
        adapter = create_adapter(spec, LoadContext(models_dir=models_dir), device="cpu")
        layer = adapter.layers()[-1]
        ctx.features[sid] = adapter.embed(x, [layer])[layer].numpy().astype(np.float64)
        ctx.source_probs[sid] = torch.softmax(adapter.source_logits(x).double(), dim=1).numpy()
        with np.load(Path(spec.extra["card_dir"]) / spec.extra["source_stats"]["file"], allow_pickle=False) as z:
            ctx.source_stats[sid] = (z[f"{layer}/features"].astype(np.float64), z[f"{layer}/labels"])
        ctx.cards[sid] = spec
    return ctx


def metric_rankers() -> dict[str, Callable[[TargetContext, str], float]]:
    """``name -> fn(ctx, source) -> score`` with higher = better (distances are negated)."""
    from app.transferability import METRICS, score, task_difficulty

    rankers: dict[str, Callable[[TargetContext, str], float]] = {}
    for name, spec in METRICS.items():
        if spec.kind == "difficulty":
            continue
        sign = -1.0 if spec.direction == "lower_is_better" else 1.0

        def fn(ctx: TargetContext, sid: str, name: str = name, sign: float = sign) -> float:
            f, (sf, sl) = ctx.features[sid], ctx.source_stats[sid]
            return sign * score(name, features=f, labels=ctx.labels, source_probs=ctx.source_probs[sid],
                                a=f, b=sf, source_features=sf, source_labels=sl, target_features=f,
                                target_labels=ctx.labels)
        rankers[f"{name} ({spec.kind})"] = fn
    rankers["task_difficulty.knn_error (difficulty, neg.)"] = \
        lambda ctx, sid: -task_difficulty(ctx.features[sid], ctx.labels).knn_error
    rankers["task_difficulty.fisher (difficulty)"] = \
        lambda ctx, sid: task_difficulty(ctx.features[sid], ctx.labels).fisher_separability
    rankers["source accuracy (trivial)"] = lambda ctx, sid: float(ctx.cards[sid].source.accuracy)
    rankers["parameter count (trivial)"] = lambda ctx, sid: float(ctx.cards[sid].num_params)
    return rankers


#: more rankers for the table, ``name -> fn(ctx) -> {source: score}``; the lead adds the ranking service's
#: stored ranking here (e.g. one that submits the target to a running server and reads the ranked list)
EXTRA_ROWS: dict[str, Callable[[TargetContext], Mapping[str, float]]] = {
    "ranking service (default job: layers=auto, best layer)": lambda ctx: _service_row(ctx),
}


def _service_row(ctx: TargetContext) -> dict[str, float]:
    from bench.transfer.service_rows import ranking_service_scores

    return ranking_service_scores(ctx.target, sorted(ctx.features), MODELS_DIR)


MODELS_DIR = Path("models")


def default_aggregate(ctx: TargetContext, per_metric: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The service's default ranking: rank mean of ``default_metrics('classification')`` (``app.ranking``)."""
    from app.ranking import aggregate
    from app.transferability import METRICS, default_metrics

    names = list(default_metrics("classification"))
    sources = sorted(ctx.features)
    cols = {n: [per_metric[f"{n} ({METRICS[n].kind})"][s] for s in sources] for n in names}
    result = aggregate(cols, {n: True for n in names}, method="rank_mean")
    return dict(zip(sources, result.score.tolist(), strict=True))


def rank_quality(pred: Mapping[str, float], truth: Mapping[str, float]) -> dict[str, float]:
    sources = sorted(truth)
    p = np.array([pred.get(s, np.nan) for s in sources], dtype=np.float64)
    t = np.array([truth[s] for s in sources], dtype=np.float64)
    p = np.where(np.isfinite(p), p, np.nanmin(p[np.isfinite(p)]) - 1 if np.isfinite(p).any() else 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tau = stats.weightedtau(p, t).statistic if np.ptp(p) > 0 else 0.0
        r = stats.pearsonr(p, t).statistic if np.ptp(p) > 0 and np.ptp(t) > 0 else 0.0
    best = set(np.flatnonzero(t == t.max()))
    order = np.argsort(-p, kind="stable")
    return {"tau": float(tau), "pearson": float(r), "top1": float(order[0] in best),
            "top3": float(bool(best & set(order[:3].tolist())))}


def random_quality(truth: Mapping[str, float], seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    draws = [rank_quality(dict(zip(sorted(truth), rng.random(len(truth)), strict=True)), truth)
             for _ in range(RANDOM_DRAWS)]
    return {k: float(np.mean([d[k] for d in draws])) for k in draws[0]}


def verdict_rows(verdicts: Mapping[tuple[str, str], str], truth_labels: Mapping[tuple[str, str], str]) -> dict:
    """Precision / recall of probe verdicts ``negative_transfer`` against ground-truth ``negative`` pairs,
    over the (target, source) pairs both know."""
    pairs = [k for k in verdicts if k in truth_labels]
    tp = sum(verdicts[k] == "negative_transfer" and truth_labels[k] == "negative" for k in pairs)
    fp = sum(verdicts[k] == "negative_transfer" and truth_labels[k] != "negative" for k in pairs)
    fn = sum(verdicts[k] != "negative_transfer" and truth_labels[k] == "negative" for k in pairs)
    return {"pairs": len(pairs), "precision": tp / (tp + fp) if tp + fp else math.nan,
            "recall": tp / (tp + fn) if tp + fn else math.nan}


def load_truth(path: Path) -> tuple[dict[str, dict[str, float]], dict[tuple[str, str], str]]:
    truth: dict[str, dict[str, float]] = defaultdict(dict)
    labels: dict[tuple[str, str], str] = {}
    with open(path) as fh:
        for row in csv.DictReader(fh):
            truth[row["target"]][row["source"]] = float(row["finetune"])
            labels[(row["target"], row["source"])] = row["label"]
    return dict(truth), labels


def evaluate(truth: Mapping[str, Mapping[str, float]], models_dir: Path) -> tuple[list[str], dict[str, dict[str, dict]]]:
    """``(targets, {ranker: {target: quality}})``."""
    rankers = metric_rankers()
    table: dict[str, dict[str, dict]] = defaultdict(dict)
    targets = sorted(truth)
    for i, tgt in enumerate(targets):
        ctx = embed_target(tgt, sorted(truth[tgt]), models_dir)
        per_metric: dict[str, dict[str, float]] = {}
        for name, fn in rankers.items():
            values = {}
            for sid in sorted(truth[tgt]):
                try:
                    values[sid] = float(fn(ctx, sid))
                except (ValueError, np.linalg.LinAlgError) as exc:
                    print(f"  {tgt} {name} {sid}: {exc}")
                    values[sid] = math.nan
            per_metric[name] = values
            table[name][tgt] = rank_quality(values, truth[tgt])
        table["aggregate: rank_mean of service defaults"][tgt] = rank_quality(default_aggregate(ctx, per_metric), truth[tgt])
        for name, row_fn in EXTRA_ROWS.items():
            table[name][tgt] = rank_quality(row_fn(ctx), truth[tgt])
        table["random (mean of 200 draws)"][tgt] = random_quality(truth[tgt], seed=i)
        print(f"{tgt}: {len(per_metric)} metrics scored", flush=True)
    return targets, table


def markdown(targets: list[str], table: Mapping[str, Mapping[str, dict]], labels: Mapping[tuple[str, str], str],
             gt_rows: list[dict] | None = None) -> str:
    lines = ["# Transfer benchmark: how well metrics rank the zoo", "",
             "Generated by `python -m bench.transfer.evaluate` from `ground_truth.csv` (protocol: `PROTOCOL.md`).",
             "Truth per target: mean fine-tune test accuracy over seeds, every zoo source at its last layer.",
             "τ_w: weighted Kendall τ (`scipy.stats.weightedtau`); r: Pearson; top-1 / top-3: hit rate of the",
             "truly best source. Distances are negated (higher = closer).", ""]
    counts: dict[str, int] = defaultdict(int)
    for v in labels.values():
        counts[v] += 1
    lines += [f"Ground-truth pairs: {sum(counts.values())} — " + ", ".join(f"{k}: {counts[k]}" for k in sorted(counts)),
              "", "## Average over targets", "", "| ranker | τ_w | r | top-1 | top-3 |", "|---|---:|---:|---:|---:|"]
    avg = {name: {k: float(np.mean([per[t][k] for t in targets])) for k in ("tau", "pearson", "top1", "top3")}
           for name, per in table.items()}
    for name in sorted(avg, key=lambda n: -avg[n]["tau"]):
        a = avg[name]
        lines.append(f"| {name} | {a['tau']:.3f} | {a['pearson']:.3f} | {a['top1']:.2f} | {a['top3']:.2f} |")
    lines += ["", "## Weighted τ per target", "", "| ranker | " + " | ".join(targets) + " |",
              "|---|" + "---:|" * len(targets)]
    for name in sorted(avg, key=lambda n: -avg[n]["tau"]):
        lines.append(f"| {name} | " + " | ".join(f"{table[name][t]['tau']:.2f}" for t in targets) + " |")
    if gt_rows:
        lines += ["", "## Ground truth: labelled pairs", "",
                  "Mean test accuracy over seeds; Δ = fine-tune − scratch; p: one-sided paired t-test.", "",
                  "| target | source | fine-tune | linear | scratch | Δ | p | label |", "|---|---|---:|---:|---:|---:|---:|---|"]
        for r in sorted(gt_rows, key=lambda r: (r["label"], r["target"], float(r["delta"]))):
            if r["label"] == "none":
                continue
            p = min(float(r["p_less_t"]), float(r["p_greater_t"]))
            lines.append(f"| {r['target']} | {r['source']} | {float(r['finetune']):.3f} | {float(r['linear']):.3f} | "
                         f"{float(r['scratch']):.3f} | {float(r['delta']):+.3f} | {p:.3g} | {r['label']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ground-truth", default=str(HERE / "ground_truth.csv"))
    p.add_argument("--models-dir", default="models")
    p.add_argument("--out", default=str(HERE / "RESULTS.md"))
    a = p.parse_args(argv)
    global MODELS_DIR
    MODELS_DIR = Path(a.models_dir)
    truth, labels = load_truth(Path(a.ground_truth))
    targets, table = evaluate(truth, Path(a.models_dir))
    with open(a.ground_truth) as fh:
        gt_rows = list(csv.DictReader(fh))
    text = markdown(targets, table, labels, gt_rows)
    from bench.transfer.service_rows import service_verdicts

    quality = verdict_rows(service_verdicts(HERE / "runs.csv"), labels)
    text += ("\n## Probe verdicts against the ground-truth negative-transfer labels\n\n"
             "The service's verdict rule (bootstrap CI of the paired Δ vs δ = 0.01, Holm across a target's "
             "sources, t-test) applied to the ground truth's own per-seed runs (`runs.csv`): agreement of the "
             "two rules on the same runs, not an independent replication.\n\n"
             "| pairs | precision (negative_transfer) | recall |\n|---:|---:|---:|\n"
             f"| {quality['pairs']} | {quality['precision']:.2f} | {quality['recall']:.2f} |\n")
    Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
