"""Caps on what a request may carry (app.api.guard): body size, header size and count, JSON nesting, error
echoes, NUL characters; unauthenticated bodies are refused before they are read; OPTIONS and 405 list every
allowed method."""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest
from sqlalchemy import func, select

from app.api.guard import json_depth_exceeds
from app.db.session import unit_of_work
from app.db.tables import Job
from app.services.auth import create_key
from tests.kits.rankings import features_npz, upload

CAP = 64 * 1024


@pytest.fixture
def capped(live_server_factory):
    return live_server_factory(start_executor=False, max_json_body_bytes=CAP, max_header_count=40,
                               max_header_bytes=8 * 1024, max_json_depth=16, max_error_echo_chars=200)


def test_json_depth_counts_brackets_outside_strings():
    assert not json_depth_exceeds(b'{"a": [[1, 2], {"b": "[[[[[["}]}', 3)
    assert json_depth_exceeds(b'{"a": [[1, 2], {"b": [[]]}]}', 3)
    assert json_depth_exceeds("[" * 100_000 + "]" * 100_000, 32)
    assert not json_depth_exceeds(b'"\\"[[[["', 1)


def test_a_body_past_the_cap_is_413_and_never_echoed(capped):
    with capped.client() as c:
        big = {"dataset_id": "x" * (2 * CAP)}
        r = c.post("/v1/rankings", json=big)
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
        assert len(r.content) < 600

        def chunks():
            for _ in range(8):
                yield b"x" * (CAP // 2)

        r = c.post("/v1/rankings", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.text


def test_a_422_repeats_at_most_a_few_hundred_bytes_of_the_input(capped):
    with capped.client() as c:
        dataset_id = upload(c, features_npz(), "feats.npz")
        r = c.post("/v1/rankings", json={"dataset_id": dataset_id, "metrics": ["m" * 50_000]})
        assert r.status_code == 422, r.text
        assert len(r.content) < 1500, len(r.content)
        assert "more characters not shown" in r.json()["detail"]
        r = c.post("/v1/rankings", json={"dataset_id": "y" * 50_000})
        assert r.status_code == 422 and len(r.content) < 1500


def test_json_nested_past_the_depth_cap_is_400(capped):
    with capped.client() as c:
        r = c.post("/v1/rankings", content="[" * 10_000 + "]" * 10_000, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"] == "bad_request", r.text
        r = c.post("/v1/rankings", content='{"dataset_id": ', headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"] == "bad_request", r.text


def test_a_multipart_card_nested_100000_deep_is_400(capped):
    card = "[" * 100_000 + "]" * 100_000
    with capped.client() as c:
        r = c.post("/v1/backbones/upload", files={"weights": ("w.safetensors", b"\0" * 64)}, data={"card": card})
        assert r.status_code == 400, r.text
        assert "TSCOUT_MAX_JSON_DEPTH" in r.json()["detail"]


def test_too_many_or_too_large_headers_are_431(capped):
    with capped.client() as c:
        r = c.get("/v1/datasets", headers={f"x-h{i}": "v" for i in range(60)})
        assert r.status_code == 431 and r.json()["error"] == "headers_too_large"
        r = c.get("/v1/datasets", headers={"x-big": "v" * 10_000})
        assert r.status_code == 431
        assert c.get("/v1/datasets").status_code == 200


@pytest.mark.parametrize("path", ["/v1/datasets?name=a%00b", "/v1/backbones/zoo:a%00b",
                                  "/v1/rankings?backbone=a%00", "/v1/backbones?q=%00"])
def test_nul_in_path_or_query_is_422(capped, path):
    with capped.client() as c:
        r = c.get(path)
        assert r.status_code == 422 and r.json()["error"] == "invalid_input", r.text


def test_nul_in_a_json_or_form_value_is_never_a_500(capped):
    with capped.client() as c:
        r = c.post("/v1/datasets", files={"file": ("f.npz", features_npz())}, data={"name": "a\x00b"})
        assert r.status_code in (201, 422), r.text
        r = c.post("/v1/rankings", json={"dataset_id": "00000000-0000-0000-0000-000000000000",
                                         "backbones": ["zoo:a\x00b"]})
        assert r.status_code == 422, r.text
        r = c.post("/v1/backbones", json={"id": "timm:res\x00net"})
        assert r.status_code == 422, r.text


def _raw_post(port: int, body_bytes: int, headers: str = "") -> tuple[bytes, float]:
    """POST a declared body of ``body_bytes`` but send none of it; the answer must come anyway."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        started = time.monotonic()
        s.sendall((f"POST /v1/rankings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}"
                   f"Content-Length: {body_bytes}\r\n\r\n").encode())
        return s.recv(4096), time.monotonic() - started


def test_unauthenticated_bodies_are_refused_before_they_are_read(live_server_factory):
    server = live_server_factory(start_executor=False, auth="required", max_json_body_bytes=64 * 1024**2)
    answer, seconds = _raw_post(server.port, 50 * 1024**2)
    assert answer.startswith(b"HTTP/1.1 401") and seconds < 5, answer[:200]
    answer, _ = _raw_post(server.port, 50 * 1024**2, "Authorization: Bearer tsk_wrong\r\n")
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    with unit_of_work(server.runtime.sessions) as s:
        _, key = create_key(s, "team", pepper=server.settings.key_pepper)
    with server.client(key) as c:
        dataset_id = upload(c, features_npz(), "feats.npz")
        r = c.post("/v1/rankings", json={"dataset_id": dataset_id})
        assert r.status_code == 202, r.text
    with server.runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 1


def test_options_and_405_list_every_allowed_method(capped):
    with capped.client() as c:
        r = c.options("/v1/rankings")
        assert r.status_code == 204
        assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
        r = c.delete("/v1/rankings")
        assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
        assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
        r = c.options("/v1/datasets/00000000-0000-0000-0000-000000000000")
        assert set(r.headers["allow"].split(", ")) == {"DELETE", "GET", "HEAD", "OPTIONS"}
        assert c.options("/v1/nothing").status_code == 404
        # a backbone id is 'family:name' and never ends in /rankings: paths that other routes own are not
        # taken for one, so a method those routes lack answers 405 with their Allow, not a backbone's 404/422
        r = c.options("/v1/backbones/upload")
        assert set(r.headers["allow"].split(", ")) == {"OPTIONS", "POST"}
        r = c.get("/v1/backbones/upload")
        assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"OPTIONS", "POST"}
        for path in ("/v1/backbones/0/rankings?limit=100", "/v1/backbones/hf:org/model/rankings"):
            r = c.patch(path, json={"licence": "MIT"})
            assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
        r = c.options("/v1/backbones/hf:org/model")
        assert set(r.headers["allow"].split(", ")) == {"DELETE", "GET", "HEAD", "OPTIONS", "PATCH"}


def test_malformed_json_400_is_documented(capped):
    with capped.client() as c:
        spec = c.get("/openapi.json").json()
    create = spec["paths"]["/v1/rankings"]["post"]["responses"]
    assert {"400", "413", "422", "503"} <= set(create)
    assert json.dumps(create["400"]).count("bad_request")
    with_body = {f"{method.upper()} {path}": op["responses"] for path, item in spec["paths"].items()
                 for method, op in item.items() if "requestBody" in op}
    assert {"PATCH /v1/backbones/{backbone_id}", "POST /v1/rankings/{job_id}/probes"} <= set(with_body)
    undocumented = {label: sorted({"400", "413", "415"} - set(responses)) for label, responses in with_body.items()}
    assert not {label: missing for label, missing in undocumented.items() if missing}
    with capped.client() as c:
        for method, path in (("PATCH", "/v1/backbones/hf:org/model"), ("POST", f"/v1/rankings/{uuid.uuid4()}/probes")):
            r = c.request(method, path, content=b"{not json", headers={"Content-Type": "application/json"})
            assert r.status_code == 400 and r.json()["error"] == "bad_request", (method, path, r.text)
