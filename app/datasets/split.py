"""The seeded, stratified train/val split stored with every dataset.

Strata: the class (classification), a quantile bin of the first target (regression; up to
:data:`MAX_QUANTILE_BINS` bins with at least two samples each), or the exact label set (multilabel; label
sets seen fewer than twice share one stratum). Within each stratum of ``m ≥ 2`` samples,
``round(val_fraction · m)`` go to val, but at least one and at most ``m − 1``, so every class appears in
both splits. The split depends only on the labels in canonical order, the seed and the fraction, so the
same content always gets the same split.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.enums import TaskType

MAX_QUANTILE_BINS = 10


def _strata(labels: np.ndarray, task_type: str) -> tuple[np.ndarray, str]:
    n = len(labels)
    if task_type == TaskType.classification:
        return np.asarray(labels, dtype=np.int64), "class"
    if task_type == TaskType.regression:
        target = np.asarray(labels, dtype=np.float64).reshape(n, -1)[:, 0]
        bins = int(max(1, min(MAX_QUANTILE_BINS, n // 2)))
        edges = np.quantile(target, np.linspace(0, 1, bins + 1)[1:-1])
        strata = np.searchsorted(edges, target, side="right")
        return strata, f"target quantiles ({bins} bins of the first target)"
    rows = np.asarray(labels).reshape(n, -1) > 0.5
    _, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    rare = counts[inverse] < 2
    strata = np.where(rare, -1, inverse)
    return strata, "label set"


def stratified_split(labels: np.ndarray, task_type: str, *, seed: int,
                     val_fraction: float) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``({"train": idx, "val": idx}, info)`` with sorted ``int64`` indices; ``info`` records the recipe."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = len(labels)
    if n < 2:
        raise ValueError(f"a split needs at least 2 samples, got {n}")
    strata, strategy = _strata(labels, task_type)
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for s in np.unique(strata):
        members = np.flatnonzero(strata == s)
        m = len(members)
        if m < 2:
            continue  # a lone sample stays in train
        k = min(max(int(round(val_fraction * m)), 1), m - 1)
        val.append(rng.permutation(members)[:k])
    val_idx = np.sort(np.concatenate(val)) if val else np.empty(0, dtype=np.int64)
    if len(val_idx) == 0:  # every stratum a singleton: fall back to a plain seeded split
        k = min(max(int(round(val_fraction * n)), 1), n - 1)
        val_idx = np.sort(rng.permutation(n)[:k])
    mask = np.zeros(n, dtype=bool)
    mask[val_idx] = True
    split = {"train": np.flatnonzero(~mask).astype(np.int64), "val": val_idx.astype(np.int64)}
    info = {
        "seed": int(seed),
        "val_fraction": float(val_fraction),
        "train_fraction": float(1 - val_fraction),
        "stratify": strategy,
        "train": int(len(split["train"])),
        "val": int(len(split["val"])),
    }
    return split, info
