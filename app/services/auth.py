"""API keys and projects: keys are shown once and stored only as a peppered HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.tables import ApiKey, Project
from app.db.upsert import insert_unless_exists
from app.errors import Unauthorized, Unavailable, raises

KEY_PREFIX = "tsk_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: every query is scoped to ``project_id``."""

    project_id: uuid.UUID
    project_name: str
    key_id: uuid.UUID | None = None


def hash_key(key: str, pepper: str) -> str:
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


def get_or_create_project(session: Session, name: str) -> Project:
    name = name.strip()
    if not name or len(name) > 200:
        raise ValueError(f"project name must be 1–200 characters, got {name!r}")
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        # first contact: concurrent requests may all get here; the one INSERT that wins is everyone's project
        insert_unless_exists(session, Project, {"id": uuid.uuid4(), "name": name, "created_at": utcnow()},
                             ["name"])
        project = session.scalar(select(Project).where(Project.name == name))
        if project is None:  # pragma: no cover - the insert or the concurrent winner left a row
            raise RuntimeError(f"project {name!r} vanished while it was being created")
    return project


def create_key(session: Session, project_name: str, *, pepper: str, name: str = "") -> tuple[ApiKey, str]:
    """Create a key for ``project_name`` (creating the project if needed); returns the row and the key."""
    project = get_or_create_project(session, project_name)
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        project_id=project.id, name=name, prefix=plaintext[:12], key_hash=hash_key(plaintext, pepper)
    )
    session.add(row)
    session.flush()
    return row, plaintext


def revoke_key(session: Session, prefix: str) -> int:
    rows = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))).all()
    for row in rows:
        row.revoked_at = utcnow()
    session.flush()
    return len(rows)


@raises(Unauthorized, Unavailable)
def authenticate(session: Session, authorization: str | None, *, pepper: str) -> Principal:
    """Resolve an ``Authorization: Bearer <key>`` header to a principal, or raise 401."""
    if not authorization:
        raise Unauthorized("missing Authorization header; send 'Authorization: Bearer <api key>'")
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("Authorization header must be 'Bearer <api key>'")
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key, pepper)))
    if row is None or row.revoked_at is not None:
        raise Unauthorized("invalid or revoked API key")
    project = session.get(Project, row.project_id)
    if project is None:  # the foreign key forbids it; refuse rather than guess
        raise Unauthorized("API key belongs to no project")
    return Principal(project_id=project.id, project_name=project.name, key_id=row.id)


@raises(Unavailable)
def local_principal(session: Session, project_name: str) -> Principal:
    project = get_or_create_project(session, project_name)
    return Principal(project_id=project.id, project_name=project.name)
