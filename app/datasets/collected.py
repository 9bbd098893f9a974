"""What a format reader hands to the ingest step: samples in arrival order, their labels and stats."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.datasets.labels import ParsedLabels
from app.datasets.spool import SampleSpool

ON_BAD_FILE = ("reject", "skip")
MAX_LISTED_FILES = 100


@dataclass(frozen=True)
class IngestOptions:
    """The caller's choices for one upload (all optional except the file name)."""

    filename: str = ""
    task_type: str | None = None
    label_columns: list[str] | None = None
    text_column: str | None = None
    on_bad_file: str = "reject"

    def __post_init__(self) -> None:
        if self.on_bad_file not in ON_BAD_FILE:
            raise ValueError(f"on_bad_file must be one of {ON_BAD_FILE}, got {self.on_bad_file!r}")


@dataclass
class Collected:
    """Samples as read: ``positions[i]`` is sample ``i``'s place in the spool (image, text) or the row of
    ``features``; ``parsed.labels[i]`` its label; ``hashes[i]`` the sha256 of its stored bytes."""

    format: str
    modality: str
    parsed: ParsedLabels
    hashes: list[bytes]
    positions: np.ndarray
    spool: SampleSpool | None = None
    features: np.ndarray | None = None
    sample_stats: dict[str, np.ndarray] = field(default_factory=dict)
    counters: dict[str, Any] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def file_notes(self) -> dict[str, Any]:
        return {
            "skipped_files": {"count": len(self.skipped), "items": self.skipped[:MAX_LISTED_FILES]},
            "ignored_files": {"count": len(self.ignored), "items": self.ignored[:MAX_LISTED_FILES]},
        }
