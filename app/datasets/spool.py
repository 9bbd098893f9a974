"""A local temporary file that collects sample bytes during ingest, before the canonical order is known.

Samples arrive in archive or row order; the stored dataset holds them in canonical (content) order, so
they are spooled here with their content hashes and copied to the artifact store once everything has
been validated — a refused upload never touches the store.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.datasets.stored import write_samples
from app.storage import ArtifactStore


class SampleSpool:
    def __init__(self, workdir: Path) -> None:
        fd, name = tempfile.mkstemp(prefix="spool-", dir=workdir)
        self.path = Path(name)
        self._fh = os.fdopen(fd, "w+b")
        self._offset = 0
        self.offsets: list[int] = []
        self.lengths: list[int] = []
        self.hashes: list[bytes] = []

    def add(self, data: bytes) -> int:
        """Append one sample; returns its spool position."""
        self._fh.write(data)
        self.offsets.append(self._offset)
        self.lengths.append(len(data))
        self.hashes.append(hashlib.sha256(data).digest())
        self._offset += len(data)
        return len(self.offsets) - 1

    def __len__(self) -> int:
        return len(self.offsets)

    def read(self, i: int) -> bytes:
        self._fh.seek(self.offsets[i])
        data = self._fh.read(self.lengths[i])
        self._fh.seek(0, os.SEEK_END)
        return data

    def copy_to_store(self, store: ArtifactStore, prefix: str, order: Sequence[int]) -> int:
        """Write spooled samples ``order[0], order[1], …`` as the stored samples; returns bytes written."""
        self._fh.flush()
        with write_samples(store, prefix) as writer:
            for i in order:
                writer.add(self.read(int(i)))
            return writer.bytes_written

    def lengths_array(self) -> np.ndarray:
        return np.asarray(self.lengths, dtype=np.int64)

    def close(self) -> None:
        self._fh.close()
        self.path.unlink(missing_ok=True)
