"""Lint, the import rule between layers, and the docker files — checked inside the test command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.kits import REPO

BIN = Path(sys.executable).parent

def test_import_contracts():
    """The import-linter contracts of pyproject.toml: layers, forbidden frameworks, no package cycles."""
    result = subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _python_files(root: Path):
    return [p for p in root.rglob("*.py") if "__pycache__" not in p.parts]


def test_no_metric_name_literal_outside_the_metric_library():
    """What the job needs to know about a metric is in its MetricSpec, never in a name literal elsewhere."""
    from app.transferability import METRICS

    names = "|".join(re.escape(n) for n in METRICS)
    pattern = re.compile(rf"""["']({names})["']""")
    bad = [f"{p.relative_to(REPO)}:{i}: {line.strip()}"
           for p in _python_files(REPO / "app") if "transferability" not in p.relative_to(REPO / "app").parts[:1]
           for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not bad, "metric names outside app/transferability:\n" + "\n".join(bad)


def test_service_modules_stay_small():
    big = {str(p.relative_to(REPO)): n for p in _python_files(REPO / "app" / "services")
           if (n := len(p.read_text().splitlines())) > 300}
    assert not big, f"service modules over 300 lines (split them): {big}"


def test_ruff_is_clean():
    result = subprocess.run(
        [str(BIN / "ruff"), "check", "app", "tests", "migrations", "bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_validates():
    exe = shutil.which("docker-compose", path=str(BIN)) or str(BIN / "docker-compose")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    ok = subprocess.run(
        [exe, "-f", "docker/compose.yaml", "config", "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env | {"TSCOUT_KEY_PEPPER": "a-long-random-secret"},
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # without a real secret the stack refuses to start rather than run with a placeholder
    refused = subprocess.run(
        [exe, "-f", "docker/compose.yaml", "config", "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )
    assert refused.returncode != 0 and "TSCOUT_KEY_PEPPER" in refused.stderr


def test_dockerfile_lints():
    result = subprocess.run(
        [str(BIN / "hadolint"), "docker/Dockerfile"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_documents_every_setting():
    from app.settings import Settings

    readme = (REPO / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"TSCOUT_{name.upper()}" not in readme]
    assert not missing, f"settings missing from the README table: {missing}"


def test_ci_runs_exactly_the_readme_test_command():
    assert "make test" in (REPO / "README.md").read_text()
    lines = [
        ln for ln in (REPO / ".ci/run").read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    assert lines[-1].strip() == "exec make test"
