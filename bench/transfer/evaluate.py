"""How well does each ranker order the zoo's sources, against ground truth v2? Regenerates RESULTS.md.

    python -m bench.transfer.evaluate                    # reads the v2 CSVs, writes RESULTS.md
    python -m bench.transfer.evaluate --write-default    # also fits the default and writes its JSON

Inputs (all in ``bench/transfer``): ``ground_truth_v2.csv`` and ``cut_points_v2.csv`` (``ground_truth_v2``),
``taps_v2.csv``, ``runs_v2.csv`` / ``curves_v2.jsonl`` (convergence), ``scores_v2.csv`` (every metric at
every tap, from the real ranking job) and ``service_default_v2.csv`` (the service's default job's table;
both from ``scores_v2``). Rankers, per target, over its sources:

* every single metric at the last layer (distances and the k-NN error negated: higher = better);
* trivial baselines: source accuracy, parameter count (cards), random (mean of 200 draws);
* the old default: the service's default job (``layers=auto``, best layer, rank mean of the defaults);
* the new default, leave-one-target-out: ``app.ranking.fit`` fitted on the other fit targets only.

Reported per ranker: mean and per-target weighted τ, Pearson, top-1 and top-3 hit rates, each mean with a
bootstrap 95 % interval over targets; hold-out targets separately (the shipped default file as the service
runs it, and today's refit on every fit target; neither saw them); the cut-point regret table; the negative-transfer pairs; where the harmful sources
land; the scratch convergence check. The v1 tables stay in ``RESULTS_v1.md``.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.ranking import fit as F
from bench.transfer.ground_truth_v2 import read_rows

HERE = Path(__file__).resolve().parent
RANDOM_DRAWS = 200
BOOTSTRAP = 2000
OLD_DEFAULT = "old default: service job (layers=auto, best layer, rank mean)"
NEW_DEFAULT = "the fitting procedure on today's candidates (leave-one-target-out)"


# -- rankers' inputs --------------------------------------------------------------------------------------------
def direction(metric: str) -> bool | None:
    """True when higher is better, False when lower is, None when the field does not rank sources."""
    from app.transferability import METRICS

    if metric.startswith("similarity."):
        return False
    if metric.startswith("difficulty."):
        return {"difficulty.knn_error": False, "difficulty.fisher_separability": True}.get(metric)
    if metric in METRICS:
        return METRICS[metric].direction == "higher_is_better"
    return None


def load_cards(models_dir: Path, sources: Sequence[str]) -> dict[str, dict]:
    from app.backbones.catalogue import Catalogue

    cat = Catalogue(models_dir)
    out = {}
    for sid in sources:
        spec = cat.get(sid)
        recipe = spec.extra.get("recipe", {}) if isinstance(spec.extra, dict) else {}
        out[sid] = {"accuracy": float(spec.source.accuracy), "params": float(spec.num_params),
                    "role": str(recipe.get("role", "")), "labels": str(recipe.get("labels", ""))}
    return out


# -- statistics -------------------------------------------------------------------------------------------------
def bootstrap_interval(values: Sequence[float], reps: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float]:
    """Percentile 95 % interval of the mean, resampling targets with replacement."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(reps, len(v)))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def random_quality(truth: Mapping[str, float], seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    draws = [F.rank_quality(dict(zip(sorted(truth), rng.random(len(truth)), strict=True)), truth)
             for _ in range(RANDOM_DRAWS)]
    return {k: float(np.mean([d[k] for d in draws])) for k in draws[0]}


def rank_quality(pred: Mapping[str, float], truth: Mapping[str, float]) -> dict[str, float]:
    """``app.ranking.fit.rank_quality`` with NaN predictions ranked last (a metric that failed on a source)."""
    finite = [v for v in pred.values() if np.isfinite(v)]
    floor = (min(finite) - 1.0) if finite else 0.0
    return F.rank_quality({s: (pred[s] if np.isfinite(pred.get(s, np.nan)) else floor) for s in truth}, truth)


def verdict_rows(verdicts: Mapping[tuple[str, str], str], truth_labels: Mapping[tuple[str, str], str]) -> dict:
    """Precision / recall of probe verdicts ``negative_transfer`` against ground-truth ``negative`` pairs."""
    pairs = [k for k in verdicts if k in truth_labels]
    tp = sum(verdicts[k] == "negative_transfer" and truth_labels[k] == "negative" for k in pairs)
    fp = sum(verdicts[k] == "negative_transfer" and truth_labels[k] != "negative" for k in pairs)
    fn = sum(verdicts[k] != "negative_transfer" and truth_labels[k] == "negative" for k in pairs)
    return {"pairs": len(pairs), "precision": tp / (tp + fp) if tp + fp else math.nan,
            "recall": tp / (tp + fn) if tp + fn else math.nan}


# -- the evaluation ---------------------------------------------------------------------------------------------
def head_metrics() -> list[str]:
    """Metrics that read the source head, not a tap: one value per source, valid at every tap."""
    from app.transferability import METRICS

    return [n for n, s in METRICS.items() if s.head_only]


def fit_candidate(metric: str) -> bool:
    """A metric the fitted default may weigh: one the service's rank stage aggregates (a registry
    transferability or baseline metric; not a similarity, a difficulty field or a pool score)."""
    from app.transferability import METRICS

    spec = METRICS.get(metric)
    return spec is not None and spec.kind in ("transferability", "baseline")


def add_pool_scores(bench: F.Benchmark, layers: Mapping[str, Sequence[str]]) -> list[str]:
    """Add each pool-level score (ETran, NCTI: ``POOL_SCORES``) at every source's last layer of every target
    whose pool has all its parts there; returns the names added. A pool score is defined across the pool's
    models at one layer each, so it exists at the last layer only."""
    from app.transferability import POOL_SCORES

    added = []
    for name, pool in POOL_SCORES.items():
        for tgt in bench.targets:
            srcs = bench.sources(tgt)
            parts = {s: {p: bench.scores[(tgt, s, layers[s][-1])].get(p, math.nan) for p in pool.parts} for s in srcs}
            if not all(np.isfinite(v) for vals in parts.values() for v in vals.values()):
                continue
            combined = pool.combine(parts)
            for s in srcs:
                bench.scores[(tgt, s, layers[s][-1])][name] = float(combined[s])
            bench.directions[name] = pool.direction == "higher_is_better"
            if name not in added:
                added.append(name)
    return added


def build(out: Path, models_dir: Path) -> dict:
    """Everything the report needs, read from the CSVs (the benchmark itself by ``app.ranking.benchmark``,
    the loader ``tscout ranker fit`` uses too)."""
    from app.ranking.benchmark import load_benchmark, scored_everywhere
    from app.transferability import label_free_metrics
    from bench.transfer.targets import CUT_POINT_TARGETS, TARGETS, target

    loaded = load_benchmark(out, direction, head_metrics(), label_free_metrics())
    bench, layers, sources = loaded.bench, loaded.bench.layers, loaded.sources
    pools = add_pool_scores(bench, layers)
    targets = bench.targets
    metrics = sorted({m for v in bench.scores.values() for m in v if direction(m) is not None} | set(pools))
    roles = {t: target(t).role for t in targets}  # the protocol's roles (targets.py), not the CSV's
    fit_targets = [t for t in targets if roles[t] == "fit"]
    old = defaultdict(dict)
    old_layer = defaultdict(dict)
    for r in read_rows(out / "service_default_v2.csv"):
        old[r["target"]][r["source"]] = float(r["aggregate"])
        old_layer[r["target"]][r["source"]] = r["best_layer"]
    gt_rows = read_rows(out / "ground_truth_v2.csv")
    return {"bench": bench, "layers": layers, "sources": sources, "targets": targets, "roles": roles,
            "protocol_targets": [t.name for t in TARGETS], "protocol_cut_targets": list(CUT_POINT_TARGETS),
            "fit_targets": fit_targets, "holdout_targets": [t for t in targets if roles[t] == "holdout"],
            "metrics": metrics,
            "candidates": [m for m in metrics if fit_candidate(m) and scored_everywhere(bench, m, fit_targets)],
            "pools": pools, "digest": loaded.digest, "shipped_file": _shipped_file(bench),
            "earlier_files": _earlier_files(bench),
            "gt_rows": gt_rows, "cut_rows": read_rows(out / "cut_points_v2.csv"), "cut_targets": bench.cut_targets,
            "old": dict(old), "old_layer": dict(old_layer), "cards": load_cards(models_dir, sources)}


def _shipped_file(bench: Any) -> Any:
    """The newest built-in classification default (what a ranking job with no options uses), or ``None``
    when there is none or these CSVs do not score its metrics."""
    try:
        file = F.load_default("classification")
    except (FileNotFoundError, ValueError):
        return None
    return file if all(m in bench.directions for m in file.weights) else None


def _earlier_files(bench: Any) -> list[Any]:
    """The built-in classification defaults older than the newest, newest first, that these CSVs score."""
    files = [F.load_default("classification", v) for v in reversed(F.versions("classification")[:-1])]
    return [f for f in files if all(m in bench.directions for m in f.weights)]


def earlier_name(file: Any) -> str:
    return f"earlier default: classification-v{file.version} file (fitted on {len(file.fitted_on)} targets)"


def single_rankings(data: dict, tgt: str) -> dict[str, dict[str, float]]:
    """``{ranker: {source: score}}`` for the single metrics (last layer) and the trivial baselines."""
    bench, layers = data["bench"], data["layers"]
    out: dict[str, dict[str, float]] = {}
    for m in data["metrics"]:
        sign = 1.0 if bench.directions[m] else -1.0
        out[m] = {s: sign * bench.scores.get((tgt, s, layers[s][-1]), {}).get(m, math.nan) for s in data["sources"]}
    out["trivial: source accuracy"] = {s: data["cards"][s]["accuracy"] for s in data["sources"]}
    out["trivial: parameter count"] = {s: data["cards"][s]["params"] for s in data["sources"]}
    return out


def evaluate(data: dict) -> dict:
    bench = data["bench"]
    fit_targets, holdouts = data["fit_targets"], data["holdout_targets"]
    table: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for i, tgt in enumerate(data["targets"]):
        truth = {s: bench.truth[(tgt, s)] for s in data["sources"]}
        for name, pred in single_rankings(data, tgt).items():
            if sum(np.isfinite(list(pred.values()))) < 2:
                continue  # not computable on this target's sources: no row, never a τ of 0
            table[name][tgt] = rank_quality(pred, truth)
        table["trivial: random (mean of 200 draws)"][tgt] = random_quality(truth, seed=i)
        if tgt in data["old"]:
            table[OLD_DEFAULT][tgt] = rank_quality(data["old"][tgt], truth)
    loto = F.leave_one_target_out(bench, fit_targets, data["candidates"]) if len(fit_targets) >= 2 else None
    if loto:
        for tgt, entry in loto["per_target"].items():
            table[NEW_DEFAULT][tgt] = {k: entry[k] for k in ("tau", "pearson", "top1", "top3")}
    shipped = None
    if fit_targets:
        shipped = F.fit_all(bench, fit_targets, data["candidates"])
        for tgt in holdouts:
            table[REFIT][tgt] = F.target_quality(bench, tgt, shipped["weights"], shipped["layer_rule"],
                                                 shipped["combination"])
    for old in data.get("earlier_files", []):
        for tgt in data["targets"]:
            table[earlier_name(old)][tgt] = F.target_quality(bench, tgt, old.weights, old.layer_rule, old.combination)
    file, file_loto = data.get("shipped_file"), None
    if file is not None and shipped is not None and shipped["weights"] == file.weights \
            and shipped["layer_rule"] == file.layer_rule and shipped["combination"] == file.combination:
        table.pop(REFIT, None)  # the refit is the shipped file: one row, not two
    if file is not None:
        name = shipped_name(file)
        for tgt in data["targets"]:  # in-sample on the targets it was fitted on: the hold-outs are the test
            if all(np.isfinite(bench.scores.get((tgt, s, data["layers"][s][-1]), {}).get(m, math.nan))
                   for s in data["sources"] for m in file.weights):
                table[name][tgt] = F.target_quality(bench, tgt, file.weights, file.layer_rule, file.combination)
        cands = [m for m in (file.method or {}).get("candidates") or [] if m in data["candidates"]]
        if cands and set(cands) != set(data["candidates"]) and len(fit_targets) >= 2:
            file_loto = F.leave_one_target_out(bench, fit_targets, cands)
            for tgt, entry in file_loto["per_target"].items():
                table[FILE_PROCEDURE][tgt] = {k: entry[k] for k in ("tau", "pearson", "top1", "top3")}
    return {"table": dict(table), "loto": loto, "shipped": shipped, "file_loto": file_loto}


REFIT = "refit on every fit target with today's candidates"
FILE_PROCEDURE = "the same procedure on the shipped file's candidates (leave-one-target-out)"


def shipped_name(file: Any) -> str:
    return f"shipped default: classification-v{file.version} file as the service runs it (in-sample on fit targets)"


def summary(table: Mapping[str, Mapping[str, dict]], targets: Sequence[str]) -> dict[str, dict[str, float]]:
    out = {}
    for name, per in table.items():
        if not all(t in per for t in targets) or not targets:
            continue
        row = {}
        for k in ("tau", "pearson", "top1", "top3"):
            vals = [per[t][k] for t in targets]
            row[k] = float(np.mean(vals))
            row[k + "_ci"] = bootstrap_interval(vals)
        out[name] = row
    return out


def cut_point_table(data: dict, loto: dict | None) -> list[dict]:
    """Per cut-point target: mean fine-tune accuracy at the chosen tap of each layer rule (weights fitted
    without the target), at the old service job's best layer, at the last tap and at the best tap."""
    bench = data["bench"]
    rows = []
    for tgt in data["cut_targets"]:
        entry = (loto or {}).get("per_target", {}).get(tgt)
        if entry:
            weights, family = entry["weights"], entry["combination"]
        else:
            f = F.fit_all(bench, [t for t in data["fit_targets"] if t != tgt], data["candidates"])
            weights, family = f["weights"], f["combination"]
        row: dict = {"target": tgt, "loto_rule": entry["layer_rule"] if entry else ""}
        for rule in F.LAYER_RULES:
            q = F.layer_rule_quality(bench, tgt, weights, rule, family)
            row[rule] = q["rule"]
            row["last_layer"], row["best_cut"] = q["last"], q["best"]
        svc = [bench.cut_truth.get((tgt, s, data["old_layer"].get(tgt, {}).get(s, ""))) for s in data["sources"]]
        row["old_service_best_layer"] = float(np.mean(svc)) if all(v is not None for v in svc) else math.nan
        row["loto_default"] = row[row["loto_rule"]] if row["loto_rule"] else math.nan
        rows.append(row)
    return rows


def harmful_ranks(data: dict, loto: dict | None, shipped: dict | None) -> list[dict]:
    """Where each harmful source (card role "harmful…" or shuffled labels) lands: truth rank, old default
    rank, new default rank (LOTO weights on fit targets; on hold-outs the shipped file, else today's refit)."""
    bench = data["bench"]
    file = data.get("shipped_file")
    if file is not None:
        shipped = {"weights": file.weights, "layer_rule": file.layer_rule, "combination": file.combination}
    harmful = [s for s in data["sources"] if data["cards"][s]["role"].startswith("harmful")
               or data["cards"][s]["labels"] == "shuffled"]
    rows = []
    for tgt in data["targets"]:
        truth = {s: bench.truth[(tgt, s)] for s in data["sources"]}
        if loto and tgt in loto["per_target"]:
            e = loto["per_target"][tgt]
            new = F.predict(bench, tgt, e["weights"], e["layer_rule"], e["combination"])
        elif shipped:
            new = F.predict(bench, tgt, shipped["weights"], shipped["layer_rule"], shipped["combination"])
        else:
            new = {}
        for s in harmful:
            rows.append({"target": tgt, "source": s, "truth": _rank(truth, s),
                         "old": _rank(data["old"].get(tgt, {}), s),
                         "new": _rank({k: v for k, (_, v) in new.items()}, s), "n": len(truth)})
    return rows


def _rank(scores: Mapping[str, float], source: str) -> int | None:
    if source not in scores:
        return None
    order = sorted(scores, key=lambda s: (-scores[s], s))
    return order.index(source) + 1


# -- the report -------------------------------------------------------------------------------------------------
def _ci(row: dict, k: str, digits: int = 3) -> str:
    lo, hi = row[k + "_ci"]
    return f"{row[k]:.{digits}f} [{lo:.{digits - 1}f}, {hi:.{digits - 1}f}]"


def markdown(data: dict, result: dict, convergence: dict | None, meta: dict | None) -> str:
    table, loto, shipped = result["table"], result["loto"], result["shipped"]
    fit_t, hold_t = data["fit_targets"], data["holdout_targets"]
    gt_rows = [r for r in data["gt_rows"] if r["target"] in data["targets"]]
    lines = ["# Transfer benchmark v2: how well rankers order the zoo", "",
             "Generated by `python -m bench.transfer.evaluate` from the v2 CSVs (protocol: `PROTOCOL.md`, "
             "section v2; the v1 tables are in `RESULTS_v1.md`).",
             f"Truth per (target, source): mean fine-tune test accuracy over {gt_rows[0]['n_seeds'] if gt_rows else '?'} "
             "paired seeds at the source's last layer, learning rate chosen on the inner validation split.",
             "Metric scores: the real ranking job (`layers=all`, every metric), `scores_v2.csv`. τ_w: weighted "
             "Kendall τ; r: Pearson; top-1 / top-3: hit rate of the truly best source; [a, b]: bootstrap 95 % "
             f"interval of the mean over targets ({BOOTSTRAP} resamples). Distances and k-NN error negated.", "",
             f"Fit targets ({len(fit_t)}): {', '.join(fit_t)}. Hold-out targets ({len(hold_t)}, never fitted on): "
             f"{', '.join(hold_t) or 'none yet'}. Sources: {len(data['sources'])}.", ""]
    missing = [t for t in data["protocol_targets"] if t not in data["targets"]]
    cut_missing = [t for t in data["protocol_cut_targets"] if t not in data["cut_targets"]]
    if missing or cut_missing:
        lines += [f"**Incomplete ground truth**: {len(data['targets'])} of {len(data['protocol_targets'])} targets "
                  "have every source's fine-tune, scratch and metric scores; not yet: "
                  f"{', '.join(missing) or 'none'}. Cut-point truth complete on {len(data['cut_targets'])} of "
                  f"{len(data['protocol_cut_targets'])} cut-point targets (not yet: {', '.join(cut_missing) or 'none'}). "
                  "Every number below is over the complete targets only; re-running `ground_truth_v2` and "
                  "`scores_v2` continues where they stopped.", ""]
    if meta:
        sessions = meta.get("sessions", [])
        wall = sum(s["wall_seconds"] for s in sessions)
        busy = sum(s["busy_seconds"] for s in sessions)
        torch_v = sorted({s["torch"] for s in sessions})
        lines += [f"Ground-truth run: {sum(s['jobs'] for s in sessions)} jobs in {len(sessions)} session(s), "
                  f"{wall:.0f} s wall, {busy:.0f} s of worker time, torch {', '.join(torch_v)}, "
                  f"{sessions[-1]['workers'] if sessions else '?'} processes × 1 thread.", ""]
    summ = summary(table, fit_t)
    missing_rankers = sorted(m for m in data["metrics"] if m not in summ)
    if missing_rankers:
        lines += [f"Not computable on every fit target of this zoo, so not ranked below: {', '.join(missing_rankers)} "
                  "(each row of `scores_v2.csv` says why).", ""]
    lines += ["## Fit targets: mean over targets (new default: leave-one-target-out)", "",
              "| ranker | τ_w | r | top-1 | top-3 |", "|---|---:|---:|---:|---:|"]
    for name in sorted(summ, key=lambda n: -summ[n]["tau"]):
        r = summ[name]
        lines.append(f"| {name} | {_ci(r, 'tau')} | {_ci(r, 'pearson')} | {_ci(r, 'top1', 2)} | {_ci(r, 'top3', 2)} |")
    lines += ["", "## Fit targets: weighted τ per target", "", "| ranker | " + " | ".join(fit_t) + " |",
              "|---|" + "---:|" * len(fit_t)]
    for name in sorted(summ, key=lambda n: -summ[n]["tau"]):
        lines.append(f"| {name} | " + " | ".join(f"{table[name][t]['tau']:.2f}" for t in fit_t) + " |")
    if loto:
        lines += ["", "## The new default, fold by fold", "",
                  "Recipe, weights and layer rule fitted on the other fit targets only. The recipe — the family "
                  "(normalised ranks or clipped z-scores) and how the weights are fitted (forward stagewise "
                  "selection, ≤ 6 units of weight on mean τ; or pooled non-negative ridge regression of the "
                  "normalised truth on the normalised metrics, ridge 1) — by an inner leave-one-target-out on "
                  "those targets. Candidates: the registry metrics the rank stage aggregates that have values on "
                  "every fit target; the recipe and weights are fitted on the label-aware ones, then one "
                  "label-free metric (it never reads the target's labels: ETran's energy) may take a share of "
                  f"{' / '.join(f'{x:g}' for x in F.LABEL_FREE_SHARES)} of the weight, chosen on the training "
                  "targets (kept when it gains ≥ 0.005 mean τ_w over none). Layer rule: the best of `last` / "
                  "`best` / `best_deep` on the training folds' cut-point truth, `last` unless strictly better.", "",
                  "| held-out target | τ_w | top-1 | family / weights by | label-free share | layer rule | weights |",
                  "|---|---:|---:|---|---|---|---|"]
        for tgt, e in loto["per_target"].items():
            w = ", ".join(f"{m} {v:.2f}" for m, v in sorted(e["weights"].items(), key=lambda kv: -kv[1]))
            free = e.get("label_free") or {}
            share = f"{free['metric']} {free['share']:g}" if free.get("metric") else "none"
            lines.append(f"| {tgt} | {e['tau']:.3f} | {e['top1']:.0f} | {e['combination']} / {e['weight_method']} | "
                         f"{share} | {e['layer_rule']} | {w} |")
    def weights_text(weights: Mapping[str, float]) -> str:
        return ", ".join(f"{m} {v:.2f}" for m, v in sorted(weights.items(), key=lambda kv: -kv[1]))

    if shipped:
        lines += ["", f"Refit today on all {len(fit_t)} fit targets (what `--write-default` would write): "
                  f"{shipped['combination']} family, weights by {shipped['weight_method']}: "
                  f"{weights_text(shipped['weights'])}; layer rule `{shipped['layer_rule']}`."]
    file = data.get("shipped_file")
    if file is not None:
        lines += ["", f"Shipped file (`{shipped_name(file)}`): {file.combination} family, weights "
                  f"{weights_text(file.weights)}; layer rule `{file.layer_rule}`; fitted on "
                  f"{len(file.fitted_on)} targets from {len((file.method or {}).get('candidates') or [])} "
                  "candidates. Its fit-target figures above are in-sample; the hold-outs below are its test."]
    if hold_t:
        hs = summary(table, hold_t)
        lines += ["", "## Hold-out targets (never fitted on)", "",
                  "The shipped file and the earlier defaults, unchanged, against every single metric and "
                  "baseline.", "",
                  "| ranker | mean τ_w | " + " | ".join(f"τ_w {t}" for t in hold_t) + " | mean top-1 |",
                  "|---|---:|" + "---:|" * len(hold_t) + "---:|"]
        for name in sorted(hs, key=lambda n: -hs[n]["tau"]):
            lines.append(f"| {name} | {hs[name]['tau']:.3f} | " +
                         " | ".join(f"{table[name][t]['tau']:.2f}" for t in hold_t) + f" | {hs[name]['top1']:.2f} |")
        earlier = data.get("earlier_files") or []
        if file is not None and earlier and shipped_name(file) in hs and earlier_name(earlier[0]) in hs:
            new_tau, old_tau = hs[shipped_name(file)]["tau"], hs[earlier_name(earlier[0])]["tau"]
            lines += ["", f"Decision rule (PROTOCOL.md: the newest file ships iff its mean τ_w on these hold-outs is "
                      f"at least the previous one's): classification-v{file.version} {new_tau:.3f} vs "
                      f"classification-v{earlier[0].version} {old_tau:.3f} → "
                      f"**{'ships' if new_tau >= old_tau else 'does not ship'}**."]
    cut = cut_point_table(data, loto)
    if cut:
        lines += ["", "## Cut points: fine-tune accuracy at the chosen tap", "",
                  "Mean over sources of the fine-tune test accuracy of the trunk cut at the tap each rule picks "
                  "(weights fitted without the target), against the last tap and each source's best tap "
                  "(regret = best − rule).", "",
                  "| target | last tap | best tap | rule `best` | rule `best_deep` | old service best_layer | "
                  "LOTO rule | LOTO default | regret of LOTO default |", "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
        for r in cut:
            lines.append(f"| {r['target']} | {r['last_layer']:.3f} | {r['best_cut']:.3f} | {r['best']:.3f} | "
                         f"{r['best_deep']:.3f} | {r['old_service_best_layer']:.3f} | {r['loto_rule']} | "
                         f"{r['loto_default']:.3f} | {r['best_cut'] - r['loto_default']:.3f} |")
        m = {k: float(np.mean([r[k] for r in cut])) for k in ("last_layer", "best_cut", "best", "best_deep",
                                                              "old_service_best_layer", "loto_default")}
        lines.append(f"| **mean** | {m['last_layer']:.3f} | {m['best_cut']:.3f} | {m['best']:.3f} | "
                     f"{m['best_deep']:.3f} | {m['old_service_best_layer']:.3f} | | {m['loto_default']:.3f} | "
                     f"{m['best_cut'] - m['loto_default']:.3f} |")
    labels: dict[str, int] = defaultdict(int)
    for r in gt_rows:
        labels[r["label"]] += 1
    neg = [r for r in gt_rows if int(r["practical_negative"])]
    lines += ["", "## Negative transfer", "",
              f"{len(gt_rows)} pairs; paired t-test labels (α = 0.05, one-sided): " +
              ", ".join(f"{k} {labels[k]}" for k in sorted(labels)) + ".",
              f"**Practical negative transfer** (fine-tune below scratch by more than δ = 1 point: one-sided "
              f"one-sample t-test of H0 mean Δ ≥ −0.01 against mean Δ < −0.01 on the paired per-seed Δ, α = 0.05): "
              f"**{len(neg)} pairs**.", "",
              "| target | source | fine-tune | scratch | linear | Δ | sd(Δ) | p (Δ < −δ) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(neg, key=lambda r: (r["target"], float(r["delta"]))):
        lines.append(f"| {r['target']} | {r['source']} | {float(r['finetune']):.3f} | {float(r['scratch']):.3f} | "
                     f"{float(r['linear']):.3f} | {float(r['delta']):+.3f} | {float(r['delta_sd']):.3f} | "
                     f"{float(r['p_practical_negative']):.3g} |")
    harm = harmful_ranks(data, loto, shipped)
    if harm:
        lines += ["", "## Where the harmful sources land", "",
                  "Rank (1 = first) among the target's sources: by the truth, the old default and the new default "
                  "(leave-one-target-out on fit targets, the shipped file on hold-outs).", "",
                  "| target | source | truth | old default | new default |", "|---|---|---:|---:|---:|"]
        for r in harm:
            lines.append(f"| {r['target']} | {r['source']} | {r['truth']} | {r['old'] or '–'} | {r['new'] or '–'} |")
    if convergence:
        lines += ["", "## Does scratch converge?", "", convergence["text"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    from bench.transfer import convergence as conv

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default=str(HERE), help="where the v2 CSVs are")
    p.add_argument("--models-dir", default="models")
    p.add_argument("--out", default=str(HERE / "RESULTS.md"))
    p.add_argument("--write-default", action="store_true",
                   help="fit the default on every fit target and write app/ranking/defaults/<task>-v<N>.json")
    p.add_argument("--default-version", type=int, default=1)
    a = p.parse_args(argv)
    out = Path(a.dir)
    data = build(out, Path(a.models_dir))
    if not data["targets"]:
        raise SystemExit("no target has complete ground truth and scores yet")
    result = evaluate(data)
    meta_path = out / "ground_truth_v2.meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    convergence = conv.check(out, plot=out / "convergence_v2.png")
    text = markdown(data, result, convergence, meta)
    if a.write_default:
        digest = data["digest"]
        default = F.fit_default(data["bench"], ground_truth_digest=digest, version=a.default_version,
                                targets=data["fit_targets"], candidates=data["candidates"], loto=result["loto"])
        path = F.write_default(default)
        text += (f"\n## The stored default\n\n`{path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}`"
                 f" (version {default.version}, ground-truth digest `{digest[:16]}…`): metrics "
                 f"{', '.join(default.metrics)}; layer rule `{default.layer_rule}`.\n")
    Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
