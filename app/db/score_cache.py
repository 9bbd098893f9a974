"""The score cache across jobs, over the ``score_cache`` table: one content-addressed row per metric value.

:func:`score_cache_key` digests everything a value depends on — the embedding cache key of the features
(or of the source-head probabilities), the digest of the scored rows, the task type, the metric, its
variant, the keyword arguments it received (the seed, where it takes a ``random_state``) and its
implementation ``version`` — so a repeated question is a lookup, and a version bump misses only that
metric's rows. :class:`SqlScoreCache` reads and writes rows in the caller's session (insert-or-ignore on
the unique key, so concurrent workers agree on one row). What to key and when to compute is the score
stage's business, not this module's.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.tables import ScoreCacheEntry
from app.db.upsert import dialect_insert

_CHUNK = 500  # keys per IN (...) query: well under every backend's parameter limit


def rows_digest(rows: np.ndarray) -> str:
    """sha256 of an index array (its int64 little-endian bytes and its length): the rows a value scored."""
    arr = np.asarray(rows)
    if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"rows must be a 1-D integer array, got dtype {arr.dtype} and shape {arr.shape}")
    return hashlib.sha256(np.ascontiguousarray(arr, dtype="<i8").tobytes()).hexdigest()


def score_cache_key(*, inputs: Sequence[str], rows: str, task_type: str, metric: str, variant: str,
                    version: str, params: Mapping[str, Any]) -> str:
    """The cache key of one metric value.

    Parameters
    ----------
    inputs : sequence of str
        Digests of what the metric reads besides the rows (embedding cache keys, a source sample's digest).
    rows : str
        :func:`rows_digest` of the scored rows.
    task_type, metric, variant, version : str
    params : mapping
        Keyword arguments the metric received (JSON-able), including ``random_state`` where it takes one.
    """
    if isinstance(inputs, str) or not inputs or not all(isinstance(i, str) and i for i in inputs):
        raise ValueError(f"inputs must be a non-empty sequence of non-empty strings, got {inputs!r}")
    for name, value in (("rows", rows), ("task_type", task_type), ("metric", metric), ("version", version)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    if not isinstance(variant, str):
        raise ValueError(f"variant must be a string, got {variant!r}")
    try:
        payload = json.dumps([list(inputs), rows, task_type, metric, variant, version, dict(params)],
                             sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"params must be JSON-able with finite numbers, got {params!r}: {exc}") from None
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class CachedScore:
    value: float | None
    seconds: float
    details: dict[str, Any]


class SqlScoreCache:
    """Score-cache rows in the caller's session (its transaction is the caller's: nothing is committed here)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def lookup(self, keys: Iterable[str]) -> dict[str, CachedScore]:
        """The cached values of those ``keys`` that have a row."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, CachedScore] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start:start + _CHUNK]
            for row in self.session.scalars(select(ScoreCacheEntry).where(ScoreCacheEntry.cache_key.in_(chunk))):
                found[row.cache_key] = CachedScore(row.value, row.seconds, dict(row.details or {}))
        return found

    def record(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """Insert-or-ignore rows (``cache_key, metric, version, variant, value, seconds, details``)."""
        required = {"cache_key", "metric", "version", "variant", "value", "seconds", "details"}
        rows = []
        for entry in entries:
            if set(entry) != required:
                raise ValueError(f"a score-cache entry has exactly the fields {sorted(required)}, got {sorted(entry)}")
            value = entry["value"]
            if value is not None and not np.isfinite(value):
                raise ValueError(f"a cached value is finite or None, got {value!r} for {entry['metric']}")
            rows.append(dict(entry))
        rows = list({r["cache_key"]: r for r in rows}.values())
        if not rows:
            return
        insert = dialect_insert(self.session)
        now = utcnow()
        # one statement, executed for many parameter sets (compiling a multi-row VALUES of 500 rows costs more
        # than running it)
        statement = insert(ScoreCacheEntry).on_conflict_do_nothing(index_elements=["cache_key"])
        for start in range(0, len(rows), _CHUNK):
            chunk = [{**r, "id": uuid.uuid4(), "created_at": now} for r in rows[start:start + _CHUNK]]
            self.session.execute(statement, chunk)
