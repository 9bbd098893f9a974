"""``tscout`` against the real app over real HTTP: a folder ranked (zipped on the fly), ``--no-wait`` printing
the id and the follow command, a CSV with its own column names, probe options reaching the request,
``tscout rankings show/export`` (CSV, JSON, HTML), and configuration errors in one line."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import zipfile

import pytest
from typer.testing import CliRunner

from app.cli import build_cli
from tests.kits import REPO
from tests.kits.rankings import TOY_ZOO, image_zip, toy_models_dir

runner = CliRunner()


def tscout(*args: str):
    return runner.invoke(build_cli(), list(args), catch_exceptions=False)


@pytest.fixture
def server(live_server_factory, tmp_path):
    return live_server_factory(models_dir=toy_models_dir(tmp_path / "models"), probe_seeds=2)


@pytest.mark.slow
def test_folder_no_wait_show_and_export(server, tmp_path):
    with zipfile.ZipFile(io.BytesIO(image_zip(per_class=6))) as zf:
        zf.extractall(tmp_path)
    folder = tmp_path / "target"
    result = tscout("rank", str(folder), "--url", server.url, "--backbones", ",".join(TOY_ZOO[:2]),
                    "--layers", "last", "--metrics", "logme,knn_accuracy", "--probe", "--top-k", "1", "--seeds", "2",
                    "--budget-steps", "2", "--budget-seconds", "30", "--no-suspicious", "--no-wait")
    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip()
    assert len(job_id) == 36, result.stdout
    assert f"tscout rankings show {job_id} --wait" in result.stderr
    assert "uploaded folder target" in result.stderr and "18 samples" in result.stderr
    with server.client() as c:
        request = c.get(f"/v1/rankings/{job_id}").json()["request"]
    assert request["probe"]["include_suspicious"] is False and request["probe"]["budget_seconds"] == 30

    shown = tscout("rankings", "show", job_id, "--wait", "--url", server.url)
    assert shown.exit_code == 0, shown.output
    assert "SUCCEEDED" in shown.stdout and TOY_ZOO[0] in shown.stdout

    exported = tscout("rankings", "export", job_id, "--format", "csv", "--url", server.url)
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert sorted(r["backbone_id"] for r in rows) == sorted(TOY_ZOO[:2])
    report = tmp_path / "report.html"
    assert tscout("rankings", "export", job_id, "--format", "html", "-o", str(report), "--url", server.url
                  ).exit_code == 0
    page = report.read_text()
    assert "<table>" in page and "<svg" in page and "Verdicts" in page
    bad = tscout("rankings", "export", job_id, "--format", "xml", "--url", server.url)
    assert bad.exit_code == 1 and "csv, json, html" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    missing = tscout("rankings", "show", "00000000-0000-0000-0000-000000000000", "--url", server.url)
    assert missing.exit_code == 1 and "not_found" in missing.stderr


def test_csv_with_its_own_column_names(server, tmp_path):
    path = tmp_path / "reviews.csv"
    rows = [("the team won the match", "sport"), ("a sweet cake with cream", "food")] * 6
    path.write_text("body,stars\n" + "".join(f"{t} {i},{label}\n" for i, (t, label) in enumerate(rows)))
    refused = tscout("rank", str(path), "--url", server.url, "--no-wait")
    assert refused.exit_code == 1 and "text" in refused.stderr and "Traceback" not in refused.output
    result = tscout("rank", str(path), "--url", server.url, "--text-column", "body", "--label-column", "stars",
                    "--layers", "last", "--no-wait")
    assert result.exit_code == 0, result.output
    assert "12 samples, text, classification" in result.stderr


def test_unreachable_server_and_unknown_dataset_are_one_line(tmp_path):
    down = tscout("rank", "00000000-0000-0000-0000-000000000000", "--url", "http://127.0.0.1:9")
    assert down.exit_code == 1 and "cannot reach" in down.stderr and len(down.stderr.strip().splitlines()) == 1
    nothing = tscout("rank", str(tmp_path / "nope.zip"), "--url", "http://127.0.0.1:9")
    assert nothing.exit_code == 1 and "neither an existing file or folder" in nothing.stderr


def test_configuration_error_is_one_line_without_traceback(tmp_path):
    env = {**os.environ, "TSCOUT_ENV": "production", "TSCOUT_KEY_PEPPER": "changeme", "PYTHONPATH": str(REPO),
           "TSCOUT_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    done = subprocess.run([sys.executable, "-m", "app.cli", "keys", "create", "--project", "p"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "TSCOUT_KEY_PEPPER" in lines[0] and lines[0].startswith("error: configuration")
    assert "Traceback" not in done.stderr and not done.stdout


def test_several_feature_files_rank_as_feature_sets(server, tmp_path):
    from tests.kits.rankings import features_npz

    paths = []
    for seed in (0, 1):
        paths.append(tmp_path / f"model_{seed}.npz")
        paths[-1].write_bytes(features_npz(seed=seed))
    result = tscout("rank", *map(str, paths), "--url", server.url, "--metrics", "logme,knn_accuracy")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("uploaded file model_") == 2 and "features, classification" in result.stderr
    assert "(model_0.npz)" in result.stdout and "(model_1.npz)" in result.stdout and "SUCCEEDED" in result.stdout
    text = tmp_path / "texts.csv"
    text.write_text("text,label\n" + "".join(f"sample {i},{'ab'[i % 2]}\n" for i in range(8)))
    mixed = tscout("rank", str(paths[0]), str(text), "--url", server.url)
    assert mixed.exit_code == 1 and "feature sets" in mixed.stderr and "Traceback" not in mixed.output
    with_backbones = tscout("rank", *map(str, paths), "--backbones", TOY_ZOO[0], "--url", server.url)
    assert with_backbones.exit_code == 1 and "--backbones" in with_backbones.stderr
