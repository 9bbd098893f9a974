"""Lint, the import rule between layers, and the docker files — checked inside the test command."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# package → modules it must never import (DESIGN.md "Import rule")
FORBIDDEN = {
    "transferability": ("fastapi", "starlette", "sqlalchemy", "ray", "app.api", "app.db", "app.services"),
    "backbones": ("fastapi", "starlette", "sqlalchemy", "ray", "app.api", "app.db", "app.services"),
    "embeddings": ("fastapi", "starlette", "ray", "app.api"),
    "probes": ("fastapi", "starlette", "sqlalchemy", "ray", "app.api", "app.db", "app.services"),
    "datasets": ("fastapi", "starlette", "ray", "app.api"),
    "services": ("fastapi", "starlette", "ray", "app.api"),
    "db": ("fastapi", "starlette", "ray", "app.api", "app.services"),
    "storage": ("fastapi", "starlette", "sqlalchemy", "ray", "app.api"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_rule(package):
    root = REPO / "app" / package
    if not root.exists():
        pytest.skip(f"app/{package} not built yet")
    bad = []
    for path in root.rglob("*.py"):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package]):
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    assert not bad, "layering violated:\n" + "\n".join(bad)


def test_fastapi_only_under_app_api():
    bad = [
        str(p.relative_to(REPO))
        for p in (REPO / "app").rglob("*.py")
        if "api" not in p.relative_to(REPO / "app").parts[:1]
        and p.name != "main.py"
        and any(n.split(".")[0] in ("fastapi", "starlette") for n in _imports(p))
    ]
    assert not bad, f"FastAPI imported outside app/api: {bad}"


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
