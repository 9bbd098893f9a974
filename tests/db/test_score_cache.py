"""The score cache's key and its table: every part of the key matters, rows round-trip, inserts are idempotent."""

from __future__ import annotations

import numpy as np
import pytest

from app.db.score_cache import SqlScoreCache, rows_digest, score_cache_key
from app.db.session import make_engine, make_sessionmaker

BASE = dict(inputs=["e" * 64], rows=rows_digest(np.arange(10)), task_type="classification", metric="logme",
            variant="logme.full_d_evidence", version="1", params={"random_state": 0})


def test_every_part_of_the_key_changes_it():
    key = score_cache_key(**BASE)
    assert key == score_cache_key(**BASE) and len(key) == 64
    changed = [dict(BASE, inputs=["f" * 64]), dict(BASE, inputs=["e" * 64, "s" * 64]),
               dict(BASE, rows=rows_digest(np.arange(11))), dict(BASE, rows=rows_digest(np.arange(1, 11))),
               dict(BASE, task_type="regression"), dict(BASE, metric="hscore"), dict(BASE, variant="other"),
               dict(BASE, version="2"), dict(BASE, params={"random_state": 1}), dict(BASE, params={})]
    keys = {score_cache_key(**c) for c in changed}
    assert key not in keys and len(keys) == len(changed)
    # parameter order does not matter
    assert score_cache_key(**dict(BASE, params={"a": 1, "b": 2})) == score_cache_key(**dict(BASE, params={"b": 2, "a": 1}))


def test_rows_digest_sees_order_and_repeats():
    assert rows_digest(np.array([0, 1, 1])) != rows_digest(np.array([0, 1]))
    assert rows_digest(np.array([1, 0])) != rows_digest(np.array([0, 1]))
    assert rows_digest(np.array([0, 1], dtype=np.int32)) == rows_digest(np.array([0, 1], dtype=np.int64))


@pytest.mark.parametrize("bad", [dict(inputs=[]), dict(inputs="abc"), dict(inputs=[""]), dict(rows=""),
                                 dict(metric=""), dict(version=""), dict(params={"x": float("nan")}),
                                 dict(params={"x": object()})])
def test_bad_key_parts_raise(bad):
    with pytest.raises(ValueError):
        score_cache_key(**{**BASE, **bad})


def test_rows_digest_rejects_non_integer_rows():
    with pytest.raises(ValueError, match="1-D integer"):
        rows_digest(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="1-D integer"):
        rows_digest(np.zeros((2, 2), dtype=int))


def _entry(key: str, value: float | None = 1.5) -> dict:
    return {"cache_key": key, "metric": "logme", "version": "1", "variant": "v", "value": value, "seconds": 0.25,
            "details": {"warnings": ["w"]}}


def test_record_and_lookup_round_trip_and_ignore_duplicates(db_url):
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    try:
        keys = [f"{i:064x}" for i in range(1200)]  # more than one IN (...) chunk
        with sessions() as s:
            SqlScoreCache(s).record([_entry(k, float(i)) for i, k in enumerate(keys)] + [_entry("f" * 64, None)])
            s.commit()
        with sessions() as s:  # a second writer of the same keys: ignored, not an error, first value kept
            SqlScoreCache(s).record([_entry(keys[0], 99.0), _entry(keys[0], 98.0)])
            s.commit()
        with sessions() as s:
            got = SqlScoreCache(s).lookup(keys + ["f" * 64, "0" * 63 + "z"])
        assert len(got) == len(keys) + 1
        assert got[keys[0]].value == 0.0 and got[keys[1199]].value == 1199.0
        assert got["f" * 64].value is None and got[keys[5]].seconds == 0.25
        assert got[keys[5]].details == {"warnings": ["w"]}
    finally:
        engine.dispose()


def test_record_rejects_bad_entries(db_url):
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as s:
            with pytest.raises(ValueError, match="finite or None"):
                SqlScoreCache(s).record([_entry("a" * 64, float("inf"))])
            with pytest.raises(ValueError, match="exactly the fields"):
                SqlScoreCache(s).record([{"cache_key": "a" * 64}])
    finally:
        engine.dispose()
