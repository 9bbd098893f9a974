"""``make serve`` (and ``make demo``) install only what serving needs: the package and its runtime
dependencies, never the test tools or Ray; ``make test`` installs everything."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.kits import REPO


def _dry_run(target: str) -> str:
    if shutil.which("make") is None:
        pytest.fail("make is not installed", pytrace=False)
    done = subprocess.run(["make", "-n", "-B", target], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("target", ["serve", "demo"])
def test_serving_installs_no_extras(target):
    installs = [line for line in _dry_run(target).splitlines() if "pip install" in line and "-e" in line]
    assert installs == [".venv/bin/pip install --quiet -e ."], installs


def test_test_installs_dev_and_ray():
    installs = [line for line in _dry_run("test").splitlines() if "pip install" in line and "-e" in line]
    assert installs == ['.venv/bin/pip install --quiet -e ".[dev,ray]"'], installs
