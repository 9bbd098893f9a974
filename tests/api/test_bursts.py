"""Bursts of concurrent reads: every request answers 200 within seconds on both databases.

A burst of sync requests used to deadlock the pool (each held a connection between two thread hops while
the threads that would release them waited for a pool slot): 64 requests answered 40 × 500 after the
30 s pool timeout. Admission, request threads and pool are now sized together (``app.api.deps.admit``).
"""

from __future__ import annotations

import time

import pytest

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
