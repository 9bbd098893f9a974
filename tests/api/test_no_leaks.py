"""No absolute server path, OS error repr or stack frame in a response body: a read-only store answers 503,
a job's ``error`` names the artifact by key, ``/readyz`` names no temp path, hub-id paths are 422."""

from __future__ import annotations

import os

import pytest

from app.execution import tasks
from app.jobs import state as job_state
from app.runtime import Runtime
from tests.kits.handlers import denied
from tests.kits.jobs import make_job
from tests.kits.rankings import features_npz


def _read_only(store):
    def writer(key):
        raise PermissionError(13, "Permission denied", str(store.local_path(key)))

    return writer


def _no_server_paths(text: str, *roots: str) -> None:
    for root in roots:
        assert root not in text, text
    assert "Traceback" not in text and "[Errno" not in text and "/tmp/" not in text, text


def test_upload_to_a_read_only_store_is_503_without_paths(server, monkeypatch, tmp_path):
    monkeypatch.setattr(server.runtime.store, "writer", _read_only(server.runtime.store))
    with server.client() as c:
        r = c.post("/v1/datasets", files={"file": ("f.npz", features_npz())}, data={"name": "f"})
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "unavailable" and "Retry-After" in r.headers
        _no_server_paths(r.text, str(tmp_path), *server.runtime.store.root_paths)
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"]["artifacts"] == "not writable: PermissionError"
        _no_server_paths(r.text, str(tmp_path))


def test_a_job_error_names_the_artifact_by_key(settings_factory, tmp_path):
    runtime = Runtime.from_settings(settings_factory())
    try:
        job_id = make_job(runtime, kind="test-denied")
        tasks.run_job(runtime, job_id, "w", {"test-denied": denied})
        with runtime.sessions() as s:
            error = job_state.get_job(s, job_id).error
        assert error == "PermissionError: Permission denied (artifact embeddings/ab/abcdef.npy)"
        _no_server_paths(error, str(tmp_path), os.path.dirname(str(tmp_path)))
    finally:
        runtime.close()


@pytest.mark.parametrize("backbone_id", ["hf:../../../etc", "hf:org/../../x", "timm:/etc/x", "hf:a//b"])
def test_hub_ids_that_climb_are_422(client, backbone_id):
    r = client.post("/v1/backbones", json={"id": backbone_id})
    assert r.status_code == 422 and r.json()["error"] == "invalid_input", r.text
