"""The shared resources a process needs to serve requests or run jobs, built from settings.

The API lifespan, ``tscout worker`` and Ray workers each build one ``Runtime``; tasks receive ids and
open their own sessions from ``runtime.sessions``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import make_engine, make_sessionmaker
from app.settings import Settings
from app.storage import ArtifactStore


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ArtifactStore
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        engine = make_engine(settings.database_url)
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            store=ArtifactStore(settings.storage_url),
        )

    def close(self) -> None:
        self.engine.dispose()
