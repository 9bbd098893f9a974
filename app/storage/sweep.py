"""The orphan sweep: remove artifacts that no row references, once they are older than a grace period.

Artifacts are written before the row that names them is committed, so a process killed in between (or a
commit that failed after the write) leaves objects without a row. This module decides what is an orphan
from the store's listing and the keys the database references — handed in as data: it reads no table —
and removes it. Only the namespaces the service writes are swept (``datasets/<id>/…``, ``embeddings/``,
``backbones/``, ``_health/`` probes, and temporary names of interrupted writes); anything else in the store
is left alone. The grace period protects writes whose commit is still on its way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from app.storage import ArtifactStore

SWEPT_NAMESPACES = ("datasets", "embeddings", "backbones", "_health")


@dataclass(frozen=True)
class Referenced:
    """What the database references: dataset prefixes (``datasets/<id>``) and exact artifact keys."""

    dataset_prefixes: frozenset[str]
    keys: frozenset[str]


@dataclass
class SweepReport:
    removed: list[str] = field(default_factory=list)
    kept_recent: int = 0
    undated: int = 0


def _is_temporary(key: str) -> bool:
    name = PurePosixPath(key).name
    return name.startswith(".tmp-") or ".tmp-" in name


def is_orphan(key: str, referenced: Referenced) -> bool:
    """True if ``key`` is in a swept namespace and no row references it (or it is an interrupted write)."""
    parts = PurePosixPath(key).parts
    if not parts or parts[0] not in SWEPT_NAMESPACES:
        return False
    if _is_temporary(key) or parts[0] == "_health":
        return True
    if parts[0] == "datasets":
        return len(parts) < 2 or f"datasets/{parts[1]}" not in referenced.dataset_prefixes
    return key not in referenced.keys


def sweep_orphans(store: ArtifactStore, referenced: Referenced, *, grace_seconds: float,
                  now: float | None = None, dry_run: bool = False) -> SweepReport:
    """Remove every orphan (:func:`is_orphan`) last modified more than ``grace_seconds`` ago.

    ``referenced`` must be read *after* the listing starts being trusted — i.e. call this with keys read
    from the database just before — and the grace period must exceed the longest upload-to-commit time.
    """
    if grace_seconds < 0:
        raise ValueError(f"grace_seconds must be >= 0, got {grace_seconds}")
    cutoff = (time.time() if now is None else now) - grace_seconds
    report = SweepReport()
    for key, modified in list(store.iter_files()):
        if not is_orphan(key, referenced):
            continue
        if modified is None:
            report.undated += 1
            continue
        if modified > cutoff:
            report.kept_recent += 1
            continue
        if not dry_run:
            store.delete(key)
        report.removed.append(key)
    if not dry_run:
        store.prune_empty_folders()
    return report
