"""Service settings, read from the environment (prefix ``TSCOUT_``) by :func:`get_settings`.

Nothing here is read at import time: the app factory, the CLI and the tests call
``get_settings()`` (cached) or build a ``Settings`` explicitly.
"""

from __future__ import annotations

import os
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "development-pepper", "secret"})


class Environment(StrEnum):
    development = "development"
    production = "production"


class AuthMode(StrEnum):
    disabled = "disabled"
    required = "required"


class ExecutorKind(StrEnum):
    local = "local"
    ray = "ray"


class Settings(BaseSettings):
    """Every knob of the service; the defaults make ``make serve`` work on a fresh machine."""

    model_config = SettingsConfigDict(env_prefix="TSCOUT_", env_file=None, extra="ignore")

    env: Environment = Environment.development
    host: str = "127.0.0.1"
    port: int = 8000

    database_url: str = Field(
        default="sqlite:///./var/tscout.db",
        description="SQLAlchemy URL; postgresql+psycopg://user@host/db for a shared deployment.",
    )
    storage_url: str = Field(
        default="./var/artifacts",
        description="Artifact store: a local directory or any fsspec URL (s3://bucket/prefix, memory://…).",
    )
    models_dir: Path = Field(
        default=Path("models"), description="Built-in backbone catalogue (cards + weights)."
    )
    hub_cache_dir: Path = Field(
        default=Path("var/hub-cache"),
        description="Where hub weights (timm/torchvision/transformers) are looked up offline.",
    )
    offline: bool = Field(default=True, description="Never reach a model hub; missing weights answer 422.")
    rankers_dir: Path = Field(
        default=Path("var/rankers"),
        description="This deployment's refitted default rankings (`tscout ranker fit`); the newest version here "
                    "or among the built-in ones ranks every job that does not name its own aggregation.",
    )

    auth: AuthMode = AuthMode.disabled
    local_project: str = Field(
        default="local", description="Project that every call maps to when auth is disabled."
    )
    key_pepper: str = Field(
        default="development-pepper",
        description="HMAC secret mixed into API-key hashes; must be set to a real secret in production.",
    )

    executor: ExecutorKind = ExecutorKind.local
    worker_threads: int = Field(default=2, ge=1, le=64, description="Jobs run at once by the local executor "
                                "(more than one, so a long probe job never blocks a short job behind it).")
    unit_threads: int = Field(default=0, ge=0, le=64, description="Units of one stage the local executor "
                              "runs at once where they may share the process (the score stage's; embedding "
                              "and probe units parallelise inside and run one at a time); 0 = one per CPU "
                              "core, at most 8.")
    unit_processes: bool = Field(
        default=True, description="Run those units in unit_threads worker processes (spawned once, warmed at "
                                  "start) instead of threads: a metric holds the GIL between its BLAS calls, so "
                                  "threads share about one and a half cores. Off, or with an in-memory SQLite "
                                  "database, they run on threads.")
    run_worker_in_api: bool = Field(
        default=True, description="Run the local executor inside the API process."
    )
    job_heartbeat_seconds: float = Field(default=5.0, gt=0)
    job_stale_seconds: float = Field(
        default=60.0, gt=0, description="A RUNNING job silent this long is re-queued."
    )
    job_max_attempts: int = Field(default=3, ge=1)
    job_outage_retry_seconds: float = Field(
        default=600.0, gt=0, description="How long a worker retries recording a job's outcome while the "
        "database is unreachable.")

    ray_address: str | None = Field(
        default=None, description="Ray cluster address; unset starts a local cluster."
    )
    ray_num_cpus: float = Field(default=1.0, ge=0)
    ray_num_gpus: float = Field(default=0.0, ge=0)
    ray_memory_bytes: int | None = Field(default=None, ge=0)
    ray_max_retries: int = Field(default=2, ge=0)
    ray_local_num_cpus: int | None = Field(
        default=None, ge=1, description="CPUs of a locally started cluster."
    )

    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")

    # uploads and hostile-archive caps
    max_upload_bytes: int = Field(default=2 * 1024**3, gt=0)
    max_archive_total_bytes: int = Field(default=8 * 1024**3, gt=0)
    max_member_bytes: int = Field(default=256 * 1024**2, gt=0)
    max_compression_ratio: float = Field(default=200.0, gt=1)
    max_archive_files: int = Field(default=500_000, gt=0)
    max_image_pixels: int = Field(default=64_000_000, gt=0)
    max_weights_bytes: int = Field(default=4 * 1024**3, gt=0)

    split_seed: int = 0
    val_fraction: float = Field(default=0.2, gt=0, lt=1)

    probe_first_round: int = Field(default=6, ge=2, le=50, description="Paired seeds of a candidate's first round.")
    probe_round_size: int = Field(default=3, ge=1, le=50, description="Paired seeds added per further round.")
    probe_max_seeds: int = Field(default=20, ge=2, le=50, description="Most paired seeds per probed candidate.")
    probe_time_budget_seconds: float = Field(
        default=3600.0, gt=0, description="Wall-clock budget of a job's whole probe stage (all rounds)."
    )
    probe_margin: float = Field(default=0.01, ge=0, description="Practical margin δ (fraction of accuracy).")
    embed_batch_size: int = Field(default=128, ge=1)
    embed_num_workers: int = Field(default=0, ge=0)

    # request handling: admission, threads and the database pool are sized together (app.api.deps)
    api_max_concurrent_requests: int = Field(
        default=16, ge=1, le=1024,
        description="Requests that hold a database session at once; the others wait without a thread.")
    api_threads: int = Field(default=32, ge=2, le=1024, description="Threads for blocking request work.")
    api_workers: int = Field(
        default=0, ge=0, le=64, description="API processes `tscout serve` runs; 0: one per CPU core. With more "
        "than one, the local executor runs in one `tscout worker` process beside them, never in each.")
    db_pool_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Wait for a pooled connection before answering 503.")
    retry_after_seconds: int = Field(default=5, ge=1, description="Retry-After sent with a 503.")

    # caps on what a request may carry (uploads have their own, above)
    max_json_body_bytes: int = Field(default=1024**2, gt=0, description="Bodies outside the upload routes.")
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, description="All request headers together.")
    max_header_count: int = Field(default=100, ge=8, description="Request headers per request.")
    max_json_depth: int = Field(default=32, ge=2, description="Nesting of a JSON body or JSON form field.")
    max_error_echo_chars: int = Field(
        default=400, ge=40, description="Longest error message (the middle of a longer one is left out), so "
        "at most this much caller input is repeated.")

    # orphan sweep (tscout gc, also at worker start)
    gc_grace_seconds: float = Field(
        default=3600.0, ge=0, description="Artifacts without a row are removed once older than this.")

    # CLI client (tscout rank)
    api_url: str = Field(default="http://127.0.0.1:8000", description="Server the CLI talks to.")
    api_key: str | None = Field(default=None, description="Bearer key the CLI sends (auth=required servers).")

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.env is Environment.production and self.key_pepper.strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError(
                "TSCOUT_KEY_PEPPER is a placeholder; set a real secret before running with TSCOUT_ENV=production"
            )
        return self

    @property
    def api_processes(self) -> int:
        """How many API processes ``tscout serve`` starts (``api_workers``, 0 meaning one per CPU core)."""
        return self.api_workers or max(os.cpu_count() or 1, 1)

    @property
    def unit_thread_count(self) -> int:
        """Threads the local executor's unit runner uses (``unit_threads``, 0 meaning one per core up to 8)."""
        return self.unit_threads or min(max(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                            else os.cpu_count() or 1, 1), 8)

    @property
    def db_pool_capacity(self) -> int:
        """Connections one process may need at once: every admitted request, every request thread (health
        checks and key checks open a session in one), every thread of asyncio's default executor (event
        streams poll the job in one), three per job thread and one per unit thread of each, and a margin — so a thread never waits for a
        connection held by a request that waits for a thread."""
        asyncio_default_executor = min(32, (os.cpu_count() or 1) + 4)
        return (self.api_max_concurrent_requests + self.api_threads + asyncio_default_executor
                + self.worker_threads * (3 + self.unit_thread_count) + 4)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, built once from the environment."""
    return Settings()
