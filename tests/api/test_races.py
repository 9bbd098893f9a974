"""Races that used to answer 500: twenty concurrent requests per race, on SQLite and PostgreSQL.

Concurrent retries with one ``Idempotency-Key`` all answer the one job (or 409 for another body), and the
first requests of a project that does not exist yet all answer 200 with one project row created.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from app.db.tables import Job, Project
from tests.kits.rankings import features_npz, upload
from tests.kits.servers import fire

N = 20


def test_concurrent_retries_with_one_key_answer_the_one_job(live_server_factory):
    server = live_server_factory(start_executor=False)
    with server.client() as c:
        dataset_id = upload(c, features_npz(), "feats.npz")
    body = {"dataset_id": dataset_id, "bootstrap": 4}
    answers = fire(server.url, [dict(method="POST", url="/v1/rankings", json=body,
                                     headers={"Idempotency-Key": "same-key"}) for _ in range(N)])
    assert [r.status_code for r in answers] == [202] * N, [r.text for r in answers if r.status_code != 202]
    assert len({r.json()["id"] for r in answers}) == 1
    with server.runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 1


def test_concurrent_different_bodies_with_one_key_answer_one_job_and_409s(live_server_factory):
    server = live_server_factory(start_executor=False)
    with server.client() as c:
        dataset_id = upload(c, features_npz(), "feats.npz")
    answers = fire(server.url, [dict(method="POST", url="/v1/rankings",
                                     json={"dataset_id": dataset_id, "bootstrap": 2 + i},
                                     headers={"Idempotency-Key": "contested"}) for i in range(N)])
    codes = sorted(r.status_code for r in answers)
    assert codes == [202] + [409] * (N - 1), [r.text for r in answers if r.status_code not in (202, 409)]
    winner = next(r.json()["id"] for r in answers if r.status_code == 202)
    assert all(winner in r.json()["detail"] and r.json()["error"] == "conflict"
               for r in answers if r.status_code == 409)
    with server.runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 1


def test_first_contact_of_a_new_project_creates_it_once(live_server_factory):
    name = f"fresh-{uuid.uuid4().hex[:8]}"
    server = live_server_factory(start_executor=False, local_project=name)
    answers = fire(server.url, [dict(method="GET", url="/v1/datasets") for _ in range(N)])
    assert [r.status_code for r in answers] == [200] * N, [r.text for r in answers if r.status_code != 200]
    with server.runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Project).where(Project.name == name)) == 1
