"""What the rank stage shows beside the metrics: trivial, data-independent baselines that any metric must
beat (source accuracy, parameter count, a seeded random order — each with the rank it would give), and the
label-level difficulty of the target (feature-space difficulty is stored per backbone by the score stage)."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.ranking import rank_with_ties
from app.services.rankings.inputs import RankingInputs

BASELINES = ("source_accuracy", "num_params")


def trivial_baselines(inputs: RankingInputs, names: list[str]) -> dict[str, dict[str, Any]]:
    values = {b: inputs.describe(b) for b in names}
    random_scores = np.random.default_rng(inputs.plan.seed).random(len(names))
    out: dict[str, dict[str, Any]] = {b: {} for b in names}
    for key in BASELINES:
        column = [values[b][key] if values[b][key] is not None else np.nan for b in names]
        for b, v, r in zip(names, column, rank_with_ties(column), strict=True):
            out[b][key] = {"value": None if not np.isfinite(v) else float(v),
                           "rank": int(r) if np.isfinite(v) else None}
    for b, v, r in zip(names, random_scores, rank_with_ties(random_scores), strict=True):
        out[b]["random"] = {"value": float(v), "rank": int(r)}
    return out


def target_difficulty(inputs: RankingInputs) -> dict[str, Any]:
    """Label-level difficulty of the target: size, classes, per-class counts and imbalance."""
    plan = inputs.plan
    labels = inputs.train_labels
    out: dict[str, Any] = {"task_type": plan.task_type, "n_train": int(labels.shape[0])}
    if plan.classification:
        counts = np.bincount(labels.astype(np.int64))
        counts = counts[counts > 0]
        p = counts / counts.sum()
        entropy = float(-(p * np.log(p)).sum())
        out.update(n_classes=int(len(counts)), min_per_class=int(counts.min()), max_per_class=int(counts.max()),
                   imbalance=float(1 - entropy / np.log(len(counts))) if len(counts) > 1 else 0.0)
        if plan.is_features:
            from app.transferability import task_difficulty

            d = task_difficulty(inputs.stored.features()[inputs.stored.split("train")], labels)
            out.update(knn_error=d.knn_error, fisher_separability=d.fisher_separability,
                       intrinsic_dimension=d.intrinsic_dimension)
    else:
        out.update(n_targets=int(labels.shape[1]) if labels.ndim == 2 else 1)
    return out
