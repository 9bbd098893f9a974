"""A local temporary file that collects sample bytes during ingest, before the canonical order is known.

Samples arrive in archive or row order; the stored dataset holds them in canonical (content) order, so
they are spooled here with their content hashes and copied to the artifact store once everything has
been validated — a refused upload never touches the store.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from app.datasets.stored import write_samples
from app.storage import ArtifactStore

T = TypeVar("T")


class SampleSpool:
    def __init__(self, workdir: Path) -> None:
        fd, name = tempfile.mkstemp(prefix="spool-", dir=workdir)
        self.path = Path(name)
        self._fh = os.fdopen(fd, "w+b")
        self._offset = 0
        # compact per-sample records (~48 bytes each): ingest memory must not grow with Python objects
        self.offsets = array("q")
        self.lengths = array("q")
        self._hashes = bytearray()

    def add(self, data: bytes) -> int:
        """Append one sample; returns its spool position."""
        self._fh.write(data)
        self.offsets.append(self._offset)
        self.lengths.append(len(data))
        self._hashes += hashlib.sha256(data).digest()
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

    def hashes(self) -> np.ndarray:
        """``uint8 (n, 32)``: the sha256 of every spooled sample."""
        return np.frombuffer(bytes(self._hashes), dtype=np.uint8).reshape(-1, 32)

    def close(self) -> None:
        self._fh.close()
        self.path.unlink(missing_ok=True)


def collect_into_spool(workdir: Path, collect: Callable[[SampleSpool], T]) -> T:
    """Run a format's collector on a fresh spool; the spool's file is closed if the collector fails
    (on success the spool travels on inside the result)."""
    spool = SampleSpool(workdir)
    try:
        return collect(spool)
    except BaseException:
        spool.close()
        raise
