"""How a probe run is scored on held-out rows. Every *primary* metric is higher = better.

Classification: ``accuracy`` and ``macro_f1`` (scikit-learn's definition: the unweighted mean F1 over the
classes present in the true or the predicted labels, 0 where a class has no true or predicted member).
Regression: ``r2`` (uniform average over target columns, scikit-learn's default) and ``mae``. MAE is lower =
better, so it is reported but never primary.

Also here: :func:`score_verdict_rule`, how well the sequential verdict rule recovers ground-truth
negative transfer on an independent replication (what ``bench/probes.py`` reports). Training and the
verdict statistics themselves do not live here.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from app.probes.sequential import SequentialDesign, look

TASK_TYPES = ("classification", "regression")
PRIMARY_METRICS = {"classification": ("accuracy", "macro_f1"), "regression": ("r2",)}


def check_task_type(task_type: str) -> str:
    task_type = str(task_type)
    if task_type not in TASK_TYPES:
        raise ValueError(f"probes support task types {TASK_TYPES}, got {task_type!r}")
    return task_type


def primary_metric(task_type: str, metric: str | None = None) -> str:
    """The metric a probe selects on and the verdict compares; ``metric=None`` picks the task's default."""
    allowed = PRIMARY_METRICS[check_task_type(task_type)]
    if metric is None:
        return allowed[0]
    if metric not in allowed:
        raise ValueError(f"metric {metric!r} cannot be the primary probe metric for {task_type}; use one of {allowed}")
    return metric


def classification_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """``accuracy`` and ``macro_f1`` of predicted class indices ``y_pred (n,)`` against ``y_true (n,)``."""
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"need equal, non-empty label arrays, got {y_true.shape} and {y_pred.shape}")
    classes = np.union1d(y_true, y_pred)
    f1 = []
    for c in classes:
        t, p = y_true == c, y_pred == c
        tp = float(np.sum(t & p))
        denom = 2 * tp + float(np.sum(~t & p)) + float(np.sum(t & ~p))
        f1.append(2 * tp / denom if denom else 0.0)
    return {"accuracy": float(np.mean(y_true == y_pred)), "macro_f1": float(np.mean(f1))}


def regression_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """``r2`` and ``mae`` of predictions ``(n, k)`` against targets ``(n, k)`` (1-D arrays are one column)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    y_true = y_true.reshape(len(y_true), -1)
    y_pred = y_pred.reshape(len(y_pred), -1)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"need equal, non-empty target arrays, got {y_true.shape} and {y_pred.shape}")
    ss_res = np.sum((y_true - y_pred) ** 2, axis=0)
    ss_tot = np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=0)
    # a constant column: perfect prediction scores 1, anything else 0 (scikit-learn's force_finite)
    r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), np.where(ss_res == 0, 1.0, 0.0))
    return {"r2": float(np.mean(r2)), "mae": float(np.mean(np.abs(y_true - y_pred)))}


def scores(task_type: str, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    if task_type == "classification":
        return classification_scores(y_true, y_pred)
    return regression_scores(y_true, y_pred)


# -- scoring the verdict rule against ground truth -------------------------------------------------
Pair = tuple[str, str]  # (target, source)


def score_verdict_rule(replication: Mapping[Pair, Mapping[int, float]], truth: Mapping[Pair, Mapping[str, Any]],
                       *, design: SequentialDesign | None = None, truth_seeds: Collection[int] = range(5),
                       jobs: Mapping[str, Sequence[Pair]] | None = None,
                       negative_label: str = "negative") -> dict[str, Any]:
    """Precision / recall of ``negative_transfer`` on the practical negative-transfer pairs, replayed
    through the sequential rule on an independent replication.

    Parameters
    ----------
    replication : mapping (target, source) → {seed: Δ}
        Paired Δ = finetune − scratch per seed from runs *independent* of the ground truth: their seeds
        must be disjoint from ``truth_seeds``. The design's seed k (0, 1, 2, …) is the k-th smallest
        replication seed of the pair, so rounds reveal seeds in a fixed order; a pair whose replication
        runs out before its verdict settles stops as if at ``max_seeds``.
    truth : mapping (target, source) → {"label": str, "delta": float | None, "practical_negative": 0 | 1}
        The ground-truth label (``ground_truth.csv``'s ``label``) and mean Δ over its seeds. When a pair
        carries ``practical_negative`` (ground truth v2's own test of Δ < −δ), that flag decides whether it
        is a practical negative; otherwise the label is ``negative_label`` and Δ < −δ.
    design : SequentialDesign, optional
    truth_seeds : seeds the ground truth used (default 0–4)
    jobs : mapping job name → pairs, optional
        Which pairs are probed together (one Holm family). Default: one job per target with every source
        that ``replication`` holds for it.
    negative_label : the ground-truth label of significant negative transfer

    Returns
    -------
    dict
        ``precision``, ``recall`` (of the verdict ``negative_transfer`` on practical negative pairs: the
        label is ``negative_label`` and the ground-truth Δ < −δ), ``inconclusive_share``, ``mean_seeds``,
        ``positive_on_negative`` (pairs labelled negative that got ``positive``), counts, and ``pairs_detail``:
        per pair its verdict, seeds used and stop reason.
    """
    design = design or SequentialDesign()
    if not isinstance(design, SequentialDesign):
        raise ValueError(f"design must be a SequentialDesign, got {type(design).__name__}")
    if not replication:
        raise ValueError("replication holds no pairs")
    missing = [p for p in replication if p not in truth]
    if missing:
        raise ValueError(f"pairs without a ground-truth label: {missing[:5]!r}")
    forbidden = {int(s) for s in truth_seeds}
    for pair, seeds in replication.items():
        clash = forbidden & {int(s) for s in seeds}
        if clash:
            raise ValueError(f"replication of {pair!r} reuses ground-truth seeds {sorted(clash)!r}: "
                             "it must be an independent replication")
    if jobs is None:
        grouped: dict[str, list[Pair]] = {}
        for pair in replication:
            grouped.setdefault(pair[0], []).append(pair)
        jobs = grouped
    verdicts: dict[Pair, dict[str, Any]] = {}
    for name, pairs in jobs.items():
        unknown = [p for p in pairs if p not in replication]
        if unknown or not pairs:
            raise ValueError(f"job {name!r} names pairs the replication lacks (or none): {unknown[:5]!r}")
        order = {p: sorted(int(s) for s in replication[p]) for p in pairs}
        have = dict.fromkeys(pairs, 0)
        stopped: dict[Pair, str] = {}
        while True:
            paired = {p: {k: float(replication[p][order[p][k]]) for k in range(have[p])} for p in pairs}
            looks = look(paired, design, stopped=stopped)
            more = False
            for p, lk in looks.items():
                if p in stopped:
                    continue
                if lk.action != "continue":
                    stopped[p] = lk.action
                elif max(lk.next_seeds) >= len(order[p]):
                    stopped[p] = "max_seeds"  # the replication has no more seeds for this pair
                    have[p] = len(order[p])
                    more = True
                else:
                    have[p] = max(lk.next_seeds) + 1
                    more = True
            if not more:
                break
        for p, lk in looks.items():
            verdicts[p] = {"verdict": lk.verdict.value, "seeds": lk.stats.n, "stop": stopped.get(p, lk.action)}
    return score_verdicts(verdicts, truth, margin=design.margin, negative_label=negative_label)


def score_verdicts(verdicts: Mapping[Pair, Mapping[str, Any]], truth: Mapping[Pair, Mapping[str, Any]], *,
                   margin: float, negative_label: str = "negative") -> dict[str, Any]:
    """Score verdicts already reached — ``{pair: {"verdict", "seeds", "stop"}}``, e.g. by replaying the
    probe stage itself — against ``truth`` as :func:`score_verdict_rule` does (same fields)."""
    missing = [p for p in verdicts if p not in truth]
    if missing:
        raise ValueError(f"pairs without a ground-truth label: {missing[:5]!r}")
    def practical(p: Pair) -> bool:
        t = truth[p]
        if t.get("practical_negative") is not None:
            return bool(int(t["practical_negative"]))
        delta = t.get("delta")
        return t.get("label") == negative_label and (delta is None or float(delta) < -margin)

    said = {p for p, v in verdicts.items() if v["verdict"] == "negative_transfer"}
    actual = {p for p in verdicts if practical(p)}
    tp, fp, fn = len(said & actual), len(said - actual), len(actual - said)
    return {
        "pairs": len(verdicts), "practical_negative_pairs": len(actual), "negative_transfer_verdicts": len(said),
        "true_positives": tp, "false_positives": fp, "false_negatives": fn,
        "precision": tp / (tp + fp) if tp + fp else math.nan,
        "recall": tp / (tp + fn) if tp + fn else math.nan,
        "inconclusive_share": float(np.mean([v["verdict"] == "inconclusive" for v in verdicts.values()])),
        "mean_seeds": float(np.mean([v["seeds"] for v in verdicts.values()])),
        "positive_on_negative": sorted(p for p, v in verdicts.items()
                                       if v["verdict"] == "positive" and truth[p].get("label") == negative_label),
        "verdict_counts": {k: sum(v["verdict"] == k for v in verdicts.values())
                           for k in ("positive", "no_benefit", "negative_transfer", "inconclusive")},
        "pairs_detail": {f"{p[0]}|{p[1]}": dict(v) for p, v in sorted(verdicts.items())},
    }
