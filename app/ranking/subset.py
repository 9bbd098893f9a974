"""Multi-source selection: greedily add the backbone whose features, concatenated to the chosen ones,
raise the score most."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SubsetStep:
    backbone: str
    score: float  # score of the subset after adding this backbone
    gain: float  # marginal gain over the subset before it (NaN for the first)


def greedy_subset(
    features: Mapping[str, np.ndarray],
    score_fn: Callable[[np.ndarray], float],
    *,
    max_size: int = 3,
    min_gain: float = 0.0,
) -> list[SubsetStep]:
    """Forward selection over candidates' feature blocks.

    ``features`` maps a candidate to its (n, d) features (same rows, same order). Each block is
    standardised before concatenation so that no backbone dominates by scale. Stops at ``max_size`` or
    when the best addition gains no more than ``min_gain``.
    """
    if not features:
        raise ValueError("no candidate features given")
    if max_size < 1:
        raise ValueError(f"max_size must be ≥ 1, got {max_size}")
    rows = {f.shape[0] for f in features.values()}
    if len(rows) != 1:
        raise ValueError(f"every candidate needs the same rows, got row counts {sorted(rows)}")

    def standardise(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        sd = x.std(axis=0)
        return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)

    blocks = {name: standardise(f) for name, f in features.items()}
    chosen: list[SubsetStep] = []
    current: np.ndarray | None = None
    remaining = dict(blocks)
    while remaining and len(chosen) < max_size:
        trials = {}
        for name, block in remaining.items():
            cand = block if current is None else np.concatenate([current, block], axis=1)
            trials[name] = float(score_fn(cand))
        best = max(trials, key=lambda k: (np.nan_to_num(trials[k], nan=-np.inf), k))
        before = chosen[-1].score if chosen else float("nan")
        gain = trials[best] - before if chosen else float("nan")
        if chosen and not gain > min_gain:
            break
        chosen.append(SubsetStep(backbone=best, score=trials[best], gain=gain))
        current = remaining.pop(best) if current is None else np.concatenate([current, remaining.pop(best)], axis=1)
    return chosen
