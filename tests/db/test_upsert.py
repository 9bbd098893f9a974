"""``upsert_many``: one statement inserts new keys and updates existing ones, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.db.tables import MetricScore
from app.db.upsert import upsert, upsert_many
from app.runtime import Runtime
from tests.kits.jobs import make_job

KEY = ["job_id", "backbone_id", "layer", "metric"]


def _row(job_id, metric, value, **extra):
    return {"job_id": job_id, "backbone_id": "b", "layer": "pool", "metric": metric, "value": value,
            "variant": "v", "seconds": 0.5, "details": {"n": value}, **extra}


def test_upsert_many_inserts_then_updates_in_place(settings_factory):
    runtime = Runtime.from_settings(settings_factory())
    try:
        job_id = make_job(runtime)
        with runtime.sessions.begin() as s:
            upsert(s, MetricScore, {"job_id": job_id, "backbone_id": "b", "layer": "pool", "metric": "m0"},
                   {"value": 1.0, "variant": "v", "seconds": 0.1, "details": {}})
        with runtime.sessions() as s:
            first = {r.metric: (r.id, r.created_at) for r in s.scalars(select(MetricScore))}
        with runtime.sessions.begin() as s:
            upsert_many(s, MetricScore, [_row(job_id, f"m{i}", float(i) + 10) for i in range(5)], key=KEY)
        with runtime.sessions.begin() as s:  # the same keys again (a unit run twice): updated, not added
            upsert_many(s, MetricScore, [_row(job_id, f"m{i}", None if i == 3 else float(i)) for i in range(5)],
                        key=KEY)
        with runtime.sessions() as s:
            rows = {r.metric: r for r in s.scalars(select(MetricScore))}
        assert sorted(rows) == [f"m{i}" for i in range(5)]
        assert (rows["m0"].id, rows["m0"].created_at) == first["m0"]  # the existing row kept its identity
        assert [rows[f"m{i}"].value for i in range(5)] == [0.0, 1.0, 2.0, None, 4.0]
        assert rows["m4"].details == {"n": 4.0} and rows["m3"].details == {"n": None}
        assert len({r.id for r in rows.values()}) == 5
    finally:
        runtime.close()


def test_upsert_many_validates_rows(settings_factory):
    runtime = Runtime.from_settings(settings_factory())
    try:
        job_id = make_job(runtime)
        with runtime.sessions() as s:
            upsert_many(s, MetricScore, [], key=KEY)  # nothing to write
            with pytest.raises(ValueError, match="same columns"):
                upsert_many(s, MetricScore, [_row(job_id, "a", 1.0), _row(job_id, "b", 1.0, extra=1)], key=KEY)
            bad = _row(job_id, "a", 1.0)
            del bad["layer"]
            with pytest.raises(ValueError, match="key columns"):
                upsert_many(s, MetricScore, [bad], key=KEY)
    finally:
        runtime.close()
