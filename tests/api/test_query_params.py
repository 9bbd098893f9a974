"""Query parameters that used to answer 500 or were read loosely: timestamps without a timezone (read as
UTC), numbers given as timestamps (422), forged cursors (naive: UTC; garbage: 422), plot names (enum)."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest


@pytest.mark.parametrize("value", ["2020-01-01", "2020-01-01T00:00:00", "2020-01-01 10:30",
                                   "2020-01-01T00:00:00Z", "2020-01-01T00:00:00+02:00"])
def test_timestamps_with_or_without_timezone_answer_200(client, value):
    for name in ("created_after", "created_before"):
        r = client.get("/v1/rankings", params={name: value})
        assert r.status_code == 200, r.text


def test_a_naive_timestamp_is_read_as_utc(client):
    # a dataset list is empty, so filter on jobs: none exist, but the boundaries must be UTC either way
    now = datetime.now(UTC)
    naive_future = (now + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert client.get("/v1/rankings", params={"created_after": naive_future}).json()["total"] == 0
    assert client.get("/v1/rankings", params={"created_before": naive_future}).status_code == 200


@pytest.mark.parametrize("value", ["0.5", "1700000000", "yesterday", "2020-13-01", "2020-01-01T25:00"])
def test_numbers_and_garbage_as_timestamps_answer_422(client, value):
    r = client.get("/v1/rankings", params={"created_before": value})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_error" and r.json()["fields"][0]["field"] == "created_before"


def _cursor(stamp: str) -> str:
    return base64.urlsafe_b64encode(f"{stamp}|{uuid.uuid4()}".encode()).decode()


@pytest.mark.parametrize("path", ["/v1/rankings", "/v1/datasets"])
def test_a_cursor_with_a_naive_timestamp_is_read_as_utc(client, path):
    assert client.get(path, params={"cursor": _cursor("2020-01-01T00:00:00")}).status_code == 200
    assert client.get(path, params={"cursor": _cursor("2020-01-01T00:00:00+00:00")}).status_code == 200


@pytest.mark.parametrize("cursor", ["not base64!", "QUJD", _cursor("never"), "x" * 500])
def test_a_cursor_that_is_not_ours_answers_422(client, cursor):
    r = client.get("/v1/rankings", params={"cursor": cursor})
    assert r.status_code == 422, r.text
    assert len(r.text) < 1000


def test_plot_name_and_format_are_enums(client):
    job = uuid.uuid4()
    assert client.get(f"/v1/rankings/{job}/plots/ranking").status_code == 404
    assert client.get(f"/v1/rankings/{job}/plots/ranking.svg").status_code == 404
    assert client.get(f"/v1/rankings/{job}/plots/histogram").status_code == 422
    assert client.get(f"/v1/rankings/{job}/plots/ranking", params={"format": "gif"}).status_code == 422
    spec = client.get("/openapi.json").json()
    params = {p["name"]: p for p in spec["paths"]["/v1/rankings/{job_id}/plots/{name}"]["get"]["parameters"]}
    assert "ranking.svg" in params["name"]["schema"]["enum"]
    cursor = {p["name"]: p for p in spec["paths"]["/v1/rankings"]["get"]["parameters"]}["cursor"]
    assert "pattern" in cursor["schema"]["anyOf"][0]
