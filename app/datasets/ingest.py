"""Ingest: an uploaded file → a validated, canonically ordered, split dataset in the stored layout.

Two steps, so nothing reaches the artifact store before the upload is known to be good *and* new:

1. :func:`prepare` detects the format, reads and validates everything into a local spool, orders the
   samples canonically, computes the content digest, the split and the stats;
2. :meth:`PreparedDataset.write` copies it into the store under a prefix (the caller deletes the prefix
   if anything after fails).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from app.datasets.archive import ARCHIVE_KINDS, Limits
from app.datasets.collected import Collected, IngestOptions
from app.datasets.detect import detect_format
from app.datasets.digest import canonical_order, content_digest
from app.datasets.features import collect_features
from app.datasets.image_archive import collect_images
from app.datasets.split import stratified_split
from app.datasets.stats import dataset_stats
from app.datasets.stored import (
    FEATURES,
    LABELS,
    MANIFEST,
    SAMPLES,
    SAMPLES_INDEX,
    SPLIT,
    UPLOAD_ROWS,
    Manifest,
    write_dataset,
)
from app.datasets.text import collect_text
from app.enums import TaskType
from app.storage import ArtifactStore


@dataclass
class PreparedDataset:
    """A validated dataset waiting in local temporary files; :meth:`close` removes them."""

    collected: Collected
    order: np.ndarray
    labels: np.ndarray
    manifest: Manifest
    digest: str
    split: dict[str, np.ndarray]
    split_info: dict[str, Any]
    stats: dict[str, Any]

    @property
    def format(self) -> str:
        return self.collected.format

    @property
    def num_classes(self) -> int | None:
        return self.collected.parsed.num_classes

    def write(self, store: ArtifactStore, prefix: str) -> int:
        """Write the stored layout under ``prefix``; returns the bytes stored."""
        c = self.collected
        stored_positions = c.positions[self.order]
        keys = [MANIFEST, LABELS, SPLIT]
        features = upload_rows = None
        if c.spool is not None:
            c.spool.copy_to_store(store, prefix, stored_positions)
            keys += [SAMPLES, SAMPLES_INDEX]
        if c.features is not None:
            features, upload_rows = c.features[stored_positions], stored_positions
            keys += [FEATURES, UPLOAD_ROWS]
        write_dataset(store, prefix, self.manifest, self.labels, self.split, features=features,
                      upload_rows=upload_rows)
        return sum(store.size(f"{prefix}/{k}") for k in keys)

    def close(self) -> None:
        if self.collected.spool is not None:
            self.collected.spool.close()


def collect(fh: BinaryIO, opts: IngestOptions, limits: Limits, workdir: Path) -> Collected:
    """Read and validate an upload in whatever format it is (samples in arrival order)."""
    fmt = detect_format(fh, opts.filename)
    if fmt in ARCHIVE_KINDS:
        return collect_images(fh, fmt, opts, limits, workdir)
    if fmt in ("csv", "jsonl"):
        return collect_text(fh, fmt, opts, limits, workdir)
    return collect_features(fh, fmt, opts, limits)


def prepare(fh: BinaryIO, opts: IngestOptions, limits: Limits, *, split_seed: int, val_fraction: float,
            workdir: Path) -> PreparedDataset:
    """Everything but the store writes: validate, order canonically, digest, split, stats."""
    c = collect(fh, opts, limits, workdir)
    try:
        parsed = c.parsed
        order = canonical_order(c.hashes, parsed.labels)
        labels = parsed.labels[order]
        feature_dim = int(c.features.shape[1]) if c.features is not None else None
        classes = parsed.classes if parsed.task_type != TaskType.multilabel else parsed.target_names
        manifest = Manifest(
            modality=c.modality,
            task_type=parsed.task_type,
            num_samples=len(labels),
            classes=classes,
            target_names=parsed.target_names,
            feature_dim=feature_dim,
        )
        digest = content_digest(
            modality=c.modality, task_type=parsed.task_type, classes=classes, target_names=parsed.target_names,
            feature_dim=feature_dim, sample_hashes=c.hashes[order], labels=labels,
        )
        split, split_info = stratified_split(labels, parsed.task_type, seed=split_seed, val_fraction=val_fraction)
        stats = dataset_stats(c, digest=digest, split_info=split_info)
    except BaseException:
        if c.spool is not None:
            c.spool.close()
        raise
    return PreparedDataset(c, order, labels, manifest, digest, split, split_info, stats)
