"""A job's bootstrap resamples, drawn once per process: every score unit, bootstrap unit and the intervals
of one job ask for the same ones (drawing 30 stratified resamples costs ~5 ms each time)."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from app.db.score_cache import rows_digest
from app.ranking import bootstrap_resamples
from app.services.rankings.inputs import RankingInputs

__all__ = ["Resampled", "resampled"]


@dataclass(frozen=True)
class Resampled:
    """A job's bootstrap resamples (row positions), their rows' digests and their row multiplicities."""

    resamples: tuple[np.ndarray, ...]
    digests: tuple[str, ...]
    counts: tuple[np.ndarray, ...]


_resampled_memo: OrderedDict[tuple, Resampled] = OrderedDict()
_resampled_lock = threading.Lock()


def resampled(inputs: RankingInputs) -> Resampled:
    """The plan's resamples (read-only arrays), the same object for the same rows, labels, count and seed."""
    plan = inputs.plan
    labels = inputs.labels if plan.classification else None
    label_key = None if labels is None else (str(labels.dtype), labels.shape,
                                              hashlib.sha256(np.ascontiguousarray(labels).tobytes()).hexdigest())
    memo_key = (rows_digest(inputs.rows), label_key, plan.bootstrap, plan.seed)
    with _resampled_lock:
        if memo_key in _resampled_memo:
            _resampled_memo.move_to_end(memo_key)
            return _resampled_memo[memo_key]
    resamples = bootstrap_resamples(len(inputs.rows), plan.bootstrap, random_state=plan.seed, labels=labels)
    for idx in resamples:
        idx.setflags(write=False)
    out = Resampled(tuple(resamples), tuple(rows_digest(inputs.rows[idx]) for idx in resamples),
                    tuple(np.bincount(idx, minlength=len(inputs.rows)) for idx in resamples))
    for c in out.counts:
        c.setflags(write=False)
    with _resampled_lock:
        _resampled_memo[memo_key] = out
        while len(_resampled_memo) > 8:
            _resampled_memo.popitem(last=False)
    return out
