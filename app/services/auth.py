"""API keys and projects: keys are shown once and stored only as a peppered HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.tables import ApiKey, Backbone, Dataset, Job, Project
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


def keyless_data(session: Session, project_name: str) -> dict[str, int] | None:
    """What project ``project_name`` holds while no usable key opens it — data created with auth disabled,
    which a server with ``TSCOUT_AUTH=required`` shows to nobody — or ``None`` (no such project, nothing in
    it, or it has a key)."""
    project = session.scalar(select(Project).where(Project.name == project_name))
    if project is None or session.scalar(select(ApiKey.id).where(ApiKey.project_id == project.id,
                                                                 ApiKey.revoked_at.is_(None)).limit(1)):
        return None
    counts = {what: session.scalar(select(func.count()).select_from(table).where(table.project_id == project.id))
              or 0 for what, table in (("datasets", Dataset), ("rankings", Job), ("backbones", Backbone))}
    return counts if any(counts.values()) else None


def keyless_hint(session: Session, project_name: str) -> str | None:
    """One sentence naming the project that holds data created with auth disabled and how to open it."""
    counts = keyless_data(session, project_name)
    if counts is None:
        return None
    held = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
    return (f"project {project_name!r} (TSCOUT_LOCAL_PROJECT) holds {held} created while auth was disabled and has no "
            f"key; 'tscout keys create --project {project_name}' makes a key that sees them")


@raises(Unauthorized, Unavailable)
def authenticate(session: Session, authorization: str | None, *, pepper: str,
                 local_project: str | None = None) -> Principal:
    """Resolve an ``Authorization: Bearer <key>`` header to a principal, or raise 401. A call without a key
    is told about ``local_project``'s data when that project has no key (see :func:`keyless_hint`)."""
    if not authorization:
        hint = keyless_hint(session, local_project) if local_project else None
        raise Unauthorized("missing Authorization header; send 'Authorization: Bearer <api key>'"
                           + (f" ({hint})" if hint else ""))
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
