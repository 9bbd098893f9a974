"""The README's tour, run as written: every ``curl`` and ``tscout`` line of "A short tour" and the feature-set
example, taken from README.md itself (only the address, the placeholders ``<dataset id>`` / ``<job id>`` and
``.venv/bin/tscout`` are substituted), against the real app on a loopback port, with real curl, bash and
jq. A README edit that breaks a command breaks this test.

The server runs the toy zoo (three tiny backbones). One deviation, so the probes finish in seconds on a shared
CI core: the probe requests get a short budget added (``budget_steps`` 4, one learning rate, 2 seeds) — the
JSON body and the ``--probe`` flags are otherwise the README's."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.kits import REPO
from tests.kits.rankings import image_zip, toy_models_dir

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")]
README = (REPO / "README.md").read_text()


def _block(heading: str, index: int = 0) -> str:
    """The ``index``-th ```bash block after ``heading``."""
    section = README[README.index(heading):]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)[index]


def _commands(block: str) -> list[tuple[str, str | None]]:
    """``(command, the documented output comment after it or None)``, continuation lines joined."""
    joined = block.replace("\\\n", " ")
    out: list[tuple[str, str | None]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            if out and out[-1][1] is None:
                out[-1] = (out[-1][0], line.lstrip("# "))
            continue
        out.append((re.sub(r"\s+#\s.*$", "", line), None))
    return out


class Tour:
    def __init__(self, server, cwd: Path) -> None:
        self.server, self.cwd = server, cwd
        self.ids: dict[str, str] = {}
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "TSCOUT_API_URL": server.url, "COLUMNS": "200"}

    def run(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess:
        command = command.replace("127.0.0.1:8000", f"127.0.0.1:{self.server.port}")
        command = command.replace(".venv/bin/tscout", f"{sys.executable} -m app.cli")
        for placeholder, value in self.ids.items():
            command = command.replace(placeholder, value)
        assert "<" not in command, f"unfilled placeholder in {command!r}"
        done = subprocess.run(["bash", "-c", command], cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
        return done


def _tour_files(cwd: Path) -> None:
    (cwd / "my_target.zip").write_bytes(image_zip(per_class=8))
    with zipfile.ZipFile(io.BytesIO(image_zip(per_class=6, seed=1))) as zf:
        zf.extractall(cwd / "folder")
    (cwd / "folder" / "target").rename(cwd / "my_target")
    rows = [("the team won the match", "sport"), ("a sweet cake with cream", "food")] * 6
    (cwd / "reviews.csv").write_text("body,stars\n" + "".join(f"{t} {i},{s}\n" for i, (t, s) in enumerate(rows)))


def test_the_short_tour_as_written(live_server_factory, tmp_path):
    server = live_server_factory(models_dir=toy_models_dir(tmp_path / "models"))
    _tour_files(tmp_path)
    tour = Tour(server, tmp_path)
    steps = _commands(_block("## A short tour"))
    assert [c.split()[2] if c.startswith("curl") else "" for c, _ in steps][:1] == ["127.0.0.1:8000/readyz"]
    quick = '"seeds":2,"budget_steps":4,"lr_grid":[0.003]}'
    for command, documented in steps:
        assert '"seeds":5}' in command or '"probe"' not in command
        out = tour.run(command.replace('"seeds":5}', quick)).stdout
        if command.endswith("/readyz"):
            assert json.loads(out) == json.loads(documented)
        elif "/v1/datasets" in command:
            body, shown = json.loads(out), json.loads(documented.split(",…")[0] + "}")
            assert body["modality"] == shown["modality"] and body["task_type"] == shown["task_type"]
            tour.ids["<dataset id>"] = body["id"]
        elif "/v1/backbones" in command:
            assert json.loads(out)["total"] == 3
        elif "-X POST" in command and "/v1/rankings" in command:
            body = json.loads(out)
            assert documented.startswith("202") and body["status"] == "PENDING"
            tour.ids["<job id>"] = body["id"]
        elif command.endswith("/events"):
            assert "event: status" in out and '"SUCCEEDED"' in out
        elif "-o ranking.png" in command:
            assert (tmp_path / "ranking.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        else:
            job = json.loads(out)
            assert job["status"] == "SUCCEEDED" and len(job["table"]) == 3
            assert any(row["verdict"] for row in job["table"])

    tour.ids.clear()
    for command, documented in _commands(_block("## A short tour", 1)):
        done = tour.run(command.replace(" --probe", " --probe --budget-steps 4 --top-k 1 --seeds 2"))
        if "--no-wait" in command:
            tour.ids["<job id>"] = done.stdout.strip()
            assert documented.replace("<job id>", done.stdout.strip()) in done.stderr
        elif "my_target/" in command:
            assert documented.split(" <dataset id>")[0] in done.stderr and "SUCCEEDED" in done.stdout
        elif "export" in command:
            page = (tmp_path / "report.html").read_text()
            assert "<table>" in page and "<svg" in page and not re.search(r"(src|href)=[\"']?(https?:)?//", page)
        else:
            assert "SUCCEEDED" in done.stdout and "all-MiniLM-L6-v2" in done.stdout


def test_the_feature_set_example_as_written(live_server_factory, tmp_path):
    server = live_server_factory(models_dir=toy_models_dir(tmp_path / "models"))
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    for m, signal in (("resnet50", 2.0), ("vit_b16", 0.7), ("clip", 0.0)):
        buf = io.BytesIO()
        np.savez(buf, features=(rng.normal(size=(60, 8)) + signal * labels[:, None]).astype(np.float32), labels=labels)
        (tmp_path / f"feats_{m}.npz").write_bytes(buf.getvalue())
    tour = Tour(server, tmp_path)
    block = _block("### Candidates given as feature sets")
    curl_part, cli_line = block.split("\n.venv/bin/tscout")
    script = "\n".join(line for line in curl_part.splitlines() if not line.lstrip().startswith("#"))
    created = json.loads(tour.run(script).stdout)
    assert created["status"] == "PENDING"
    with server.client() as c:
        from tests.kits.rankings import wait_for

        job = wait_for(c, created["id"])
    assert job["status"] == "SUCCEEDED", job["error"]
    names = {k: v["name"] for k, v in job["request"]["resolved"]["feature_sets"].items()}
    assert [names[row["backbone_id"]] for row in job["table"]] == ["resnet50", "vit_b16", "clip"]
    done = tour.run(".venv/bin/tscout" + cli_line.split("#")[0])
    # the files are known content by now: each keeps the name curl gave it, and the CLI says so
    assert "SUCCEEDED" in done.stdout and "(clip)" in done.stdout
    assert done.stderr.count("note:") == 3 and "'feats_clip.npz' was not applied" in done.stderr
