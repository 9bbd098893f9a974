"""``tscout gc``: the orphan sweep — artifacts that no row references, older than ``TSCOUT_GC_GRACE_SECONDS``,
are removed (``app.storage.sweep`` decides; this module reads the referenced keys from the database).
``tscout worker`` runs it once at start (:func:`collect_garbage`)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from app.cli.console import console, fail
from app.settings import get_settings

log = logging.getLogger("tscout.gc")


def referenced_artifacts(session):
    """The artifact keys the database references, as :class:`app.storage.sweep.Referenced`."""
    from sqlalchemy import select

    from app.db.tables import Backbone, Dataset, Embedding
    from app.storage.sweep import Referenced

    prefixes = frozenset(k.rstrip("/") for k in session.scalars(select(Dataset.artifact_key)))
    keys = frozenset(session.scalars(select(Embedding.artifact_key))) | frozenset(
        k for k in session.scalars(select(Backbone.artifact_key)) if k)
    return Referenced(dataset_prefixes=prefixes, keys=keys)


def collect_garbage(runtime, *, grace_seconds: float | None = None, dry_run: bool = False):
    """Sweep ``runtime.store`` against ``runtime``'s database; returns the :class:`SweepReport`."""
    from app.storage.sweep import sweep_orphans

    grace = runtime.settings.gc_grace_seconds if grace_seconds is None else grace_seconds
    with runtime.sessions() as session:
        referenced = referenced_artifacts(session)
    report = sweep_orphans(runtime.store, referenced, grace_seconds=grace, dry_run=dry_run)
    if report.removed:
        log.info("gc: %s %d orphan artifact(s)", "would remove" if dry_run else "removed", len(report.removed))
    return report


def gc(
    grace_seconds: Annotated[float | None, typer.Option(
        "--grace-seconds", min=0, help="Only orphans older than this (default TSCOUT_GC_GRACE_SECONDS)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be removed; remove nothing")] = False,
) -> None:
    """Remove artifacts that no dataset, embedding or backbone row references (killed uploads, lost commits)."""
    from app.db import migrate
    from app.runtime import Runtime

    settings = get_settings()
    runtime = Runtime.from_settings(settings)
    try:
        problem = migrate.schema_problem(runtime.engine, settings.database_url)
        if problem:
            fail(problem)
        report = collect_garbage(runtime, grace_seconds=grace_seconds, dry_run=dry_run)
    finally:
        runtime.close()
    for key in report.removed:
        console.print(key)
    verb = "would remove" if dry_run else "removed"
    console.print(f"{verb} {len(report.removed)} orphan artifact(s); kept {report.kept_recent} younger than the "
                  f"grace period, {report.undated} undated")
