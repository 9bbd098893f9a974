"""The embedding cache's index over the ``embeddings`` table: the database half of
:class:`app.embeddings.cache.EmbeddingIndex` (that package knows no database; services pass this in)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import Embedding


class SqlEmbeddingIndex:
    """Index rows in the caller's session (its transaction is the caller's: nothing is committed here)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def artifact(self, key: str) -> str | None:
        return self.session.scalar(select(Embedding.artifact_key).where(Embedding.cache_key == key))

    def record(self, entry: dict[str, Any]) -> None:
        """Insert-or-ignore on the unique ``cache_key``, so concurrent processes agree on one row."""
        dialect = self.session.get_bind().dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # other backends: check first (a race then surfaces as an IntegrityError)
            if self.artifact(entry["cache_key"]) is None:
                self.session.add(Embedding(**entry))
                self.session.flush()
            return
        self.session.execute(insert(Embedding).values(**entry).on_conflict_do_nothing(index_elements=["cache_key"]))
