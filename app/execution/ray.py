"""Ray executor: the same job flow as the local executor, with every unit of work (embedding one
backbone, scoring one backbone, one probe arm × seed) scheduled as a Ray task, so the units of one job run
in parallel across a cluster's CPUs and GPUs.

Ray is imported lazily (the ``ray`` extra). The job orchestrator runs in this process (API or
``tscout worker``); the units run on Ray workers, which build their own :class:`Runtime` from the
settings, read and write the database themselves (idempotent upserts) and exchange embeddings through
the artifact store's content-addressed cache — never through the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from app.execution.local import LocalExecutor
from app.execution.tasks import Handlers
from app.jobs.context import Unit
from app.jobs.remote import execute_unit, portable_settings
from app.runtime import Runtime

log = logging.getLogger("tscout.ray")
REPO_ROOT = Path(__file__).resolve().parents[2]

class RayUnitRunner:
    """Maps units onto Ray tasks and waits for them, honouring cancellation between completions."""

    def __init__(self, executor: RayExecutor) -> None:
        self.executor = executor

    def map(self, unit: Unit, args: Sequence[tuple[Any, ...]], *, on_done: Callable[[int], None],
            check_cancelled: Callable[[], None], resources: dict[str, float] | None = None,
            shared_process: bool = False) -> list[Any]:
        import ray  # every unit is a task of its own (``shared_process`` changes nothing here)

        settings = self.executor.runtime.settings
        wants_gpu = bool(resources and resources.get("gpu"))
        options: dict[str, Any] = {
            "num_cpus": settings.ray_num_cpus,
            "num_gpus": settings.ray_num_gpus if wants_gpu else 0,
            "max_retries": settings.ray_max_retries,
            "retry_exceptions": False,  # a unit's own error is deterministic; only lost workers are retried
            "name": getattr(unit, "__name__", "unit"),  # what Ray's dashboard and state API show
        }
        if settings.ray_memory_bytes:
            options["memory"] = settings.ray_memory_bytes
        remote = self.executor.remote_fn.options(**options)
        refs = [remote.remote(self.executor.settings_json, unit, tuple(a)) for a in args]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        pending = list(refs)
        try:
            while pending:
                check_cancelled()
                ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5, fetch_local=True)
                for ref in ready:
                    results[index[ref]] = ray.get(ref)  # raises the unit's error: the job ends FAILED
                if ready:
                    on_done(len(refs) - len(pending))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return results


class RayExecutor(LocalExecutor):
    """``TSCOUT_EXECUTOR=ray``: jobs are claimed and orchestrated here, their units run on Ray."""

    warm_unit_processes = False

    def __init__(self, runtime: Runtime, handlers: Handlers, *, poll_seconds: float = 1.0) -> None:
        super().__init__(runtime, handlers, poll_seconds=poll_seconds)
        self.worker_id = self.worker_id.replace("local:", "ray:", 1)
        self.settings_json = portable_settings(runtime.settings)
        self.remote_fn: Any = None
        self._started_cluster = False

    def start(self) -> None:
        self.connect()
        super().start()

    def connect(self) -> None:
        """Join (or start) the Ray cluster and prepare the unit runner, without taking jobs yet."""
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise RuntimeError("TSCOUT_EXECUTOR=ray needs the 'ray' extra: pip install 'transfer-scout[ray]'") from exc
        settings = self.runtime.settings
        if not ray.is_initialized():
            started = time.perf_counter()
            if settings.ray_address:
                ray.init(address=settings.ray_address, log_to_driver=False)
            else:
                ray.init(num_cpus=settings.ray_local_num_cpus, include_dashboard=False, log_to_driver=False,
                         _node_ip_address="127.0.0.1",  # a local cluster talks over loopback only
                         runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}})
                self._started_cluster = True
            log.info("connected to Ray in %.1f s: %s", time.perf_counter() - started, ray.cluster_resources())
        self.remote_fn = ray.remote(execute_unit)
        self.units = RayUnitRunner(self)

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait=wait)
        if self._started_cluster:
            import ray

            ray.shutdown()
            self._started_cluster = False
