"""Fixtures of the executor tests: a local Ray cluster per module (started and stopped by the test)."""

from __future__ import annotations

import pytest

from app.execution.ray import REPO_ROOT


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the ray extra is part of make test; install it with .[ray]")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}})
    yield
    ray.shutdown()
