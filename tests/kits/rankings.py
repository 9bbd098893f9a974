"""Builders for the ranking tests: a toy model catalogue and small target datasets."""

from __future__ import annotations

import io
import json
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from app.services.rankings import rank_upload as submit_job  # noqa: F401 - re-exported for tests
from tests.kits.backbones import REPO, zoo_card

TOY_ZOO = ("zoo:cnn_small.toy_a", "zoo:cnn_small.toy_b", "zoo:resnet_small.toy_c")


def toy_models_dir(folder: Path) -> Path:
    """Three random-weight zoo backbones (two share an architecture) plus the packaged MiniLM card."""
    folder.mkdir(parents=True, exist_ok=True)
    zoo_card(folder, "cnn_small", "toy_a")
    zoo_card(folder, "cnn_small", "toy_b", width=12)
    zoo_card(folder, "resnet_small", "toy_c")
    for card in (REPO / "models").glob("hf-*.toml"):
        shutil.copy(card, folder / card.name)
    return folder


def image_zip(classes: int = 3, per_class: int = 14, size: int = 32, seed: int = 0) -> bytes:
    """Class folders of 32×32 PNGs whose class shows in colour and texture."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for c in range(classes):
            for i in range(per_class):
                base = np.zeros((size, size, 3))
                base[..., c % 3] = 180
                base[:: 2 + c, :, :] += 60
                img = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
                out = io.BytesIO()
                Image.fromarray(img).save(out, format="PNG")
                zf.writestr(f"target/class_{c}/{i:03d}.png", out.getvalue())
    return buf.getvalue()


def text_jsonl(per_class: int = 10) -> bytes:
    topics = {
        "sport": ["the team won the match", "a great goal in the final", "the runner broke the record",
                  "fans cheered at the stadium", "the coach praised the players"],
        "food": ["the soup was hot and salty", "fresh bread from the bakery", "a sweet cake with cream",
                 "we cooked pasta with tomatoes", "the chef grilled the fish"],
    }
    rows = []
    for label, sentences in topics.items():
        for i in range(per_class):
            rows.append({"text": f"{sentences[i % len(sentences)]} ({i})", "label": label})
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def features_npz(n_per_class: int = 30, d: int = 16, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    feats = rng.normal(size=(len(labels), d)) + labels[:, None] * 1.5
    buf = io.BytesIO()
    np.savez(buf, features=feats.astype(np.float32), labels=labels)
    return buf.getvalue()


def upload(client, data: bytes, filename: str, **form) -> str:
    r = client.post("/v1/datasets", files={"file": (filename, data)}, data={"name": filename, **form})
    assert r.status_code in (200, 201), r.text
    return r.json()["id"]


def submit_features_ranking(client, **body) -> tuple[str, str]:
    """Upload a small feature set and submit a ranking of it (4 bootstrap replicates): ``(dataset id, job id)``."""
    dataset_id = upload(client, features_npz(), "feats.npz")
    r = client.post("/v1/rankings", json={"dataset_id": dataset_id, "bootstrap": 4, **body})
    assert r.status_code == 202, r.text
    return dataset_id, r.json()["id"]


def wait_for(client, job_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/rankings/{job_id}").json()
        if job["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return job
        assert time.monotonic() < deadline, f"job still {job['status']} at {job['progress']}"
        time.sleep(0.25)


def read_table(runtime, job_id, project_id) -> dict:
    from app.services.rankings import read_ranking

    with runtime.sessions() as session:
        return read_ranking(session, job_id, project_id).model_dump(mode="json")


def run_to_success(runtime, body: dict, data: bytes | None = None, name: str = "target.zip"):
    """Submit a ranking on ``data`` (a small image zip by default), run it in this thread as the local executor
    does, assert it SUCCEEDED; returns ``(job id, project id, its metric_scores rows)``."""
    from sqlalchemy import select

    from app.db.tables import MetricScore
    from app.execution import tasks
    from app.jobs.status import JobStatus
    from app.services import job_handlers

    job_id, project_id = submit_job(runtime, "p", image_zip(per_class=10) if data is None else data, name, body)
    assert tasks.run_job(runtime, job_id, "test", job_handlers()) is JobStatus.SUCCEEDED
    with runtime.sessions() as s:
        rows = list(s.scalars(select(MetricScore).where(MetricScore.job_id == job_id)))
    return job_id, project_id, rows
