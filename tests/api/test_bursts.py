"""Bursts of concurrent reads: every request answers 200 within seconds on both databases.

A burst of sync requests used to deadlock the pool (each held a connection between two thread hops while
the threads that would release them waited for a pool slot): 64 requests answered 40 × 500 after the
30 s pool timeout. Admission, request threads and pool are now sized together (``app.api.deps.admit``).
"""

from __future__ import annotations

import time

import pytest

from tests.kits.rankings import submit_features_ranking, wait_for
from tests.kits.servers import fire

# far below the old 30 s stall; the machine this runs on may be loaded
DEADLINE_SECONDS = 20.0


@pytest.mark.parametrize(("path", "burst"), [("/v1/backbones", 64), ("/v1/backbones", 256),
                                             ("/v1/datasets", 64), ("/v1/rankings", 64)])
def test_burst_of_reads_all_answer_200(live_server_factory, path, burst):
    server = live_server_factory(start_executor=False)
    started = time.monotonic()
    answers = fire(server.url, [dict(method="GET", url=path) for _ in range(burst)])
    elapsed = time.monotonic() - started
    codes = [r.status_code for r in answers]
    assert codes == [200] * burst, {c: codes.count(c) for c in set(codes)}
    assert elapsed < DEADLINE_SECONDS, f"{burst} × GET {path} took {elapsed:.1f} s"


def test_burst_of_ranking_reads_all_answer_200(live_server_factory):
    """The two reads other services poll — a finished ranking, and the rankings of a dataset — take a
    256-request burst each: every answer 200 and the ranking's body, no pool deadlock."""
    server = live_server_factory()
    with server.client() as c:
        dataset_id, job_id = submit_features_ranking(c)
        job = wait_for(c, job_id, timeout=300)
        assert job["status"] == "SUCCEEDED", job["error"]
        one = c.get(f"/v1/rankings/{job_id}").content
    for path in (f"/v1/rankings/{job_id}", f"/v1/rankings?dataset_id={dataset_id}"):
        started = time.monotonic()
        answers = fire(server.url, [dict(method="GET", url=path) for _ in range(256)])
        elapsed = time.monotonic() - started
        codes = [r.status_code for r in answers]
        assert codes == [200] * 256, {c: codes.count(c) for c in set(codes)}
        assert elapsed < DEADLINE_SECONDS, f"256 × GET {path} took {elapsed:.1f} s"
        if "?" in path:
            assert all([item["id"] for item in r.json()["items"]] == [job_id] for r in answers)
        else:
            assert all(r.content == one for r in answers)
