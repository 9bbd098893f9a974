"""The small things a new user trips over (issue 17, point 7), over real HTTP: a JSON route sent another media
type answers 415, invalid JSON is located by line, column and character, a corrupt image is named by its
file, a re-upload of known content says which name it kept, progress events carry ``eta_seconds``, and data
created with auth disabled is announced once keys are required."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np

from app.db.session import make_engine, make_sessionmaker, unit_of_work
from app.services.auth import create_key
from tests.kits import REPO
from tests.kits.rankings import features_npz, image_zip, upload, wait_for


def test_a_json_route_refuses_other_media_types_with_415(client):
    body = json.dumps({"dataset_id": "00000000-0000-0000-0000-000000000000"})
    for path in ("/v1/rankings", "/v1/backbones"):
        for headers in ({"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}, {}):
            r = client.post(path, content=body, headers=headers)
            assert r.status_code == 415, (path, headers, r.text)
            assert r.json()["error"] == "unsupported_media_type" and "application/json" in r.json()["detail"]
    r = client.patch("/v1/backbones/zoo:cnn_small.digits", content=b'{"description": "x"}',
                     headers={"Content-Type": "text/plain; charset=utf-8"})
    assert r.status_code == 415 and "text/plain" in r.json()["detail"]
    ok = client.post("/v1/rankings", content=body, headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 422 and "dataset_id" in ok.json()["detail"]
    assert "415" in client.get("/openapi.json").json()["paths"]["/v1/rankings"]["post"]["responses"]


def test_invalid_json_is_located_by_line_column_and_character(client):
    r = client.post("/v1/rankings", content=b'{"dataset_id": "x",\n "seed": }',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json() == {"error": "bad_request",
                        "detail": "the body is not valid JSON at line 2, column 10 (character 29): Expecting value"}


def test_a_corrupt_image_is_named_by_its_file(client):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, zipfile.ZipFile(io.BytesIO(image_zip(per_class=3))) as good:
        for name in good.namelist():
            zf.writestr(name, good.read(name))
        zf.writestr("target/class_0/garbage.png", b"\x00not an image at all" * 8)
    r = client.post("/v1/datasets", files={"file": ("t.zip", buf.getvalue())})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "'target/class_0/garbage.png'" in detail and "BytesIO" not in detail and "0x" not in detail


def test_a_reupload_of_known_content_says_which_name_it_kept(client):
    first = client.post("/v1/datasets", files={"file": ("a.npz", features_npz())}, data={"name": "first-name"})
    assert first.status_code == 201 and first.json()["notes"] == []
    again = client.post("/v1/datasets", files={"file": ("a.npz", features_npz())}, data={"name": "second-name"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert again.json()["name"] == "first-name"
    [note] = again.json()["notes"]
    assert "'first-name'" in note and "'second-name' was not applied" in note and first.json()["id"] in note
    same = client.post("/v1/datasets", files={"file": ("a.npz", features_npz())}, data={"name": "first-name"})
    assert same.status_code == 200 and same.json()["notes"] == []


def test_progress_events_carry_eta_seconds(live_server_factory):
    server = live_server_factory()
    with server.client() as c:
        dataset_id = upload(c, features_npz(), "f.npz")
        job = c.post("/v1/rankings", json={"dataset_id": dataset_id, "bootstrap": 0}).json()
        events = c.get(f"/v1/rankings/{job['id']}/events", params={"interval": 0.1}).text
        wait_for(c, job["id"])
    data = [json.loads(line[len("data: "):]) for line in events.splitlines() if line.startswith("data: ")]
    assert data and all("eta_seconds" in d for d in data)
    assert data[-1]["status"] == "SUCCEEDED" and data[-1]["eta_seconds"] is None


def test_data_created_with_auth_disabled_is_announced_once_keys_are_required(live_server_factory, tmp_path):
    open_server = live_server_factory(start_executor=False)
    with open_server.client() as c:
        upload(c, features_npz(), "f.npz")
    settings = open_server.settings
    locked = live_server_factory(start_executor=False, auth="required")
    with locked.client() as c:
        r = c.get("/v1/datasets")
    assert r.status_code == 401
    assert "project 'local'" in r.json()["detail"] and "1 datasets" in r.json()["detail"]
    assert "tscout keys create --project local" in r.json()["detail"]

    env = {**os.environ, "PYTHONPATH": str(REPO), "TSCOUT_DATABASE_URL": settings.database_url,
           "TSCOUT_KEY_PEPPER": settings.key_pepper}
    done = subprocess.run([sys.executable, "-m", "app.cli", "keys", "create", "--project", "team"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "note:" in done.stderr and "tscout keys create --project local" in done.stderr

    engine = make_engine(settings.database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        create_key(session, "local", pepper=settings.key_pepper)
    engine.dispose()
    with locked.client() as c:
        r = c.get("/v1/datasets")
    assert r.status_code == 401 and "local" not in r.json()["detail"]


def test_an_npz_with_other_array_names_says_what_it_holds_and_what_it_needs(client):
    buf = io.BytesIO()
    np.savez(buf, X=np.zeros((6, 2), dtype=np.float32), y=np.array([0, 1] * 3))
    r = client.post("/v1/datasets", files={"file": ("xy.npz", buf.getvalue())})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "['X', 'y']" in detail and "'features'" in detail and "'labels'" in detail and "'targets'" in detail


def test_an_unknown_query_parameter_is_named_not_ignored(client):
    r = client.get("/v1/rankings", params={"dataset": "00000000-0000-0000-0000-000000000000"})
    assert r.status_code == 422, r.text
    assert "['dataset']" in r.json()["detail"] and "dataset_id" in r.json()["detail"]
    assert client.get("/v1/rankings", params={"dataset_id": "00000000-0000-0000-0000-000000000000"}).status_code == 200
    r = client.get("/healthz", params={"verbose": "1"})
    assert r.status_code == 422 and "no query parameters" in r.json()["detail"]
    assert client.get("/docs").status_code == 200 and client.get("/v1/metrics").status_code == 200
