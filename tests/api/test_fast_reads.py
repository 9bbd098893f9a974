"""A finished job's body is stored once, serialised, and served from there: the same bytes on every read,
still served when the rows it was built from are gone, and never stored for a job that is still running."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import delete, func, select

from app.db.tables import Job, Ranking, RankingSnapshot
from app.services.rankings import read_ranking
from tests.kits.rankings import submit_features_ranking, wait_for


def test_a_finished_job_is_served_from_its_snapshot(live_server_factory):
    server = live_server_factory()
    with server.client() as c:
        _, job_id = submit_features_ranking(c)
        with server.runtime.sessions() as s:
            assert s.scalar(select(func.count()).select_from(RankingSnapshot)) == 0  # PENDING: not stored
        job = wait_for(c, job_id)
        assert job["status"] == "SUCCEEDED", job["error"]
        first = c.get(f"/v1/rankings/{job_id}")
        with server.runtime.sessions() as s:
            stored = s.get(RankingSnapshot, uuid.UUID(job_id))
            assert stored is not None
            built = read_ranking(s, uuid.UUID(job_id), s.get(Job, uuid.UUID(job_id)).project_id)
        assert json.loads(stored.body) == json.loads(built.model_dump_json()) == first.json()
        assert first.json()["table"], "a finished ranking has rows"
        with server.runtime.sessions.begin() as s:
            s.execute(delete(Ranking).where(Ranking.job_id == uuid.UUID(job_id)))
        again = c.get(f"/v1/rankings/{job_id}")
        assert again.content == first.content and again.headers["content-type"] == "application/json"
        assert c.get(f"/v1/rankings/{uuid.uuid4()}").status_code == 404
