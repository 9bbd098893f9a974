"""The shared resources a process needs to serve requests or run jobs, built from settings — the only
process-wide state.

The API lifespan, ``tscout worker`` and each Ray worker process build one ``Runtime``; tasks receive ids
and open their own sessions from ``runtime.sessions``. What is expensive to rebuild lives here too: the
built-in backbone catalogue (read once from ``models_dir``), the last few loaded adapters, the per-key
locks of the embedding cache and the decoded probe data — never in module-level globals.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.backbones.catalogue import Catalogue
from app.db.session import make_engine, make_sessionmaker
from app.probes.data import ProbeDataCache
from app.settings import Settings
from app.storage import ArtifactStore


class AdapterCache:
    """The few adapters a process used last (units of one job arrive one after another on one worker).

    ``get(key, build)`` returns the cached adapter or builds it outside the lock (two threads may build the
    same adapter once each; the second result is kept), evicting the least recently used past ``size``.
    """

    def __init__(self, size: int = 4) -> None:
        if size < 1:
            raise ValueError(f"adapter cache size must be >= 1, got {size}")
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, build: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        built = build()
        with self._lock:
            self._items[key] = built
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return built

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class KeyedLocks:
    """One lock per key, created on first use (the embedding cache computes each key once per process)."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def __call__(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ArtifactStore
    catalogue: Catalogue
    adapters: AdapterCache = field(default_factory=AdapterCache)
    embedding_locks: KeyedLocks = field(default_factory=KeyedLocks)
    #: decoded, preprocessed probe data per (dataset digest, split, preprocessing): decoded once per process
    probe_data: ProbeDataCache = field(default_factory=ProbeDataCache)
    #: (dataset digest, backbone id) pairs known to have no source head (LEEP/NCE do not apply)
    no_source_head: set[tuple[str, str]] = field(default_factory=set)
    #: process-wide resources the layers above build on first use (e.g. the unit worker processes), closed
    #: with the runtime: ``resource(key, build)``
    _resources: dict[str, Any] = field(default_factory=dict, repr=False)
    _resources_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def resource(self, key: str, build: Callable[[], Any]) -> Any:
        """The resource under ``key``, built once by ``build()``; its ``close()`` runs when the runtime closes."""
        with self._resources_lock:
            if key not in self._resources:
                self._resources[key] = build()
            return self._resources[key]

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        engine = make_engine(settings.database_url, pool_capacity=settings.db_pool_capacity,
                             pool_timeout=settings.db_pool_timeout_seconds)
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            store=ArtifactStore(settings.storage_url),
            catalogue=Catalogue(Path(settings.models_dir)),
        )

    def close(self) -> None:
        with self._resources_lock:
            resources, self._resources = list(self._resources.values()), {}
        for resource in resources:
            close = getattr(resource, "close", None)
            if close is not None:
                close()
        self.adapters.clear()
        self.engine.dispose()
