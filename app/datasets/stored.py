"""The canonical stored form of a target dataset — the seam between ingestion and the pipeline.

Every upload format is converted at ingest into this layout under one artifact prefix
(``datasets/<dataset id>/``):

``manifest.json``
    ``{"version": 1, "modality": "image"|"text"|"features", "task_type": …, "num_samples": n,
    "classes": [str, …] | null, "target_names": [str, …] | null, "feature_dim": d | null}``
``labels.npy``
    classification: ``int64 (n,)`` indices into ``classes``; regression / multilabel: ``float32 (n, k)``.
``samples.bin`` + ``samples.idx.npy``
    image and text datasets: the samples' bytes back to back (encoded image files, or UTF-8 text) and an
    ``int64 (n, 2)`` array of ``(offset, length)``. Images stay encoded and are decoded lazily.
``features.npy``
    features datasets: ``float32 (n, d)`` caller-supplied embeddings.
``upload_rows.npy``
    features datasets: ``int64 (n,)``, the row each stored sample had in the uploaded file, so feature sets
    of the same samples uploaded separately (one per model) can be aligned row by row. Datasets stored
    before this file existed lack it.
``split.npz``
    ``train`` and ``val``: sorted ``int64`` index arrays.

Readers never trust the files more than the ingest step did: sizes and shapes are re-checked on open.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from app.storage import ArtifactStore

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LABELS = "labels.npy"
SAMPLES = "samples.bin"
SAMPLES_INDEX = "samples.idx.npy"
FEATURES = "features.npy"
UPLOAD_ROWS = "upload_rows.npy"
SPLIT = "split.npz"
SPLITS = ("train", "val")


@dataclass(frozen=True)
class Manifest:
    modality: str
    task_type: str
    num_samples: int
    classes: list[str] | None = None
    target_names: list[str] | None = None
    feature_dim: int | None = None
    version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        data = json.loads(raw)
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported stored-dataset version {data.get('version')!r}")
        return cls(**data)


class SampleWriter:
    """Streams samples into ``samples.bin`` while recording their offsets (constant memory)."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._offset = 0
        self.index: list[tuple[int, int]] = []

    def add(self, data: bytes) -> int:
        self._fh.write(data)
        self.index.append((self._offset, len(data)))
        self._offset += len(data)
        return len(self.index) - 1

    @property
    def bytes_written(self) -> int:
        return self._offset


@contextmanager
def write_samples(store: ArtifactStore, prefix: str) -> Iterator[SampleWriter]:
    """Write ``samples.bin`` and ``samples.idx.npy``; both appear only if the block succeeds."""
    with store.writer(f"{prefix}/{SAMPLES}") as fh:
        writer = SampleWriter(fh)
        yield writer
    store.put_array(f"{prefix}/{SAMPLES_INDEX}", np.asarray(writer.index, dtype=np.int64).reshape(-1, 2))


def write_dataset(store: ArtifactStore, prefix: str, manifest: Manifest, labels: np.ndarray,
                  split: dict[str, np.ndarray], features: np.ndarray | None = None,
                  upload_rows: np.ndarray | None = None) -> None:
    """Write everything except the samples (written before with :func:`write_samples`), manifest last."""
    if set(split) != set(SPLITS):
        raise ValueError(f"split must have exactly {SPLITS}, got {sorted(split)}")
    store.put_array(f"{prefix}/{LABELS}", labels)
    if features is not None:
        store.put_array(f"{prefix}/{FEATURES}", np.ascontiguousarray(features, dtype=np.float32))
    if upload_rows is not None:
        store.put_array(f"{prefix}/{UPLOAD_ROWS}", np.ascontiguousarray(upload_rows, dtype=np.int64))
    buf = io.BytesIO()
    np.savez(buf, **{k: np.sort(np.asarray(v, dtype=np.int64)) for k, v in split.items()})
    store.put_bytes(f"{prefix}/{SPLIT}", buf.getvalue())
    store.put_bytes(f"{prefix}/{MANIFEST}", manifest.to_json())


class StoredDataset:
    """Read access to one stored dataset. Cheap to create; arrays are loaded on first use."""

    def __init__(self, store: ArtifactStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix
        self.manifest = Manifest.from_json(store.get_bytes(f"{prefix}/{MANIFEST}"))
        self._labels: np.ndarray | None = None
        self._index: np.ndarray | None = None
        self._split: dict[str, np.ndarray] | None = None
        self._fh: BinaryIO | None = None
        self._fh_pid: int | None = None

    # -- metadata -----------------------------------------------------------------------------
    @property
    def modality(self) -> str:
        return self.manifest.modality

    @property
    def task_type(self) -> str:
        return self.manifest.task_type

    def __len__(self) -> int:
        return self.manifest.num_samples

    @property
    def labels(self) -> np.ndarray:
        """Class indices ``(n,)`` for classification, targets ``(n, k)`` otherwise."""
        if self._labels is None:
            labels = self.store.get_array(f"{self.prefix}/{LABELS}")
            if labels.shape[0] != len(self):
                raise ValueError(f"stored labels have {labels.shape[0]} rows for {len(self)} samples")
            self._labels = labels
        return self._labels

    def split(self, name: str) -> np.ndarray:
        """Sorted sample indices of the ``train`` or ``val`` split; ``all`` gives every index."""
        if name == "all":
            return np.arange(len(self), dtype=np.int64)
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS + ('all',)}")
        if self._split is None:
            with np.load(io.BytesIO(self.store.get_bytes(f"{self.prefix}/{SPLIT}")), allow_pickle=False) as z:
                self._split = {k: z[k] for k in SPLITS}
        return self._split[name]

    def features(self) -> np.ndarray:
        if self.modality != "features":
            raise ValueError(f"dataset modality is {self.modality!r}; only 'features' datasets store features")
        return self.store.get_array(f"{self.prefix}/{FEATURES}", mmap=True)

    def upload_rows(self) -> np.ndarray | None:
        """``int64 (n,)``: the row each stored sample had in the uploaded file (features datasets stored since
        feature sets could be aligned), or ``None``."""
        key = f"{self.prefix}/{UPLOAD_ROWS}"
        if self.modality != "features" or not self.store.exists(key):
            return None
        rows = self.store.get_array(key)
        if rows.shape != (len(self),) or not np.array_equal(np.sort(rows), np.arange(len(self))):
            raise ValueError(f"stored upload rows of {self.prefix} are not a permutation of {len(self)} rows")
        return rows

    # -- samples ------------------------------------------------------------------------------
    @property
    def sample_index(self) -> np.ndarray:
        if self._index is None:
            index = self.store.get_array(f"{self.prefix}/{SAMPLES_INDEX}")
            if index.shape != (len(self), 2):
                raise ValueError(f"stored sample index has shape {index.shape}, expected ({len(self)}, 2)")
            self._index = index
        return self._index

    def sample_bytes(self, i: int) -> bytes:
        """The raw bytes of sample ``i`` (an encoded image file, or UTF-8 text)."""
        offset, length = self.sample_index[i].tolist()
        # one handle per process: DataLoader workers fork, and a shared file position would race
        if self._fh is None or self._fh_pid != os.getpid():
            self._fh = self.store.open(f"{self.prefix}/{SAMPLES}")
            self._fh_pid = os.getpid()
        self._fh.seek(offset)
        data = self._fh.read(length)
        if len(data) != length:
            raise ValueError(f"sample {i} is truncated in the stored dataset")
        return data

    def close(self) -> None:
        """Close the samples file this process opened (it reopens on the next read)."""
        if self._fh is not None and self._fh_pid == os.getpid():
            self._fh.close()
        self._fh, self._fh_pid = None, None

    def text(self, i: int) -> str:
        return self.sample_bytes(i).decode("utf-8")

    def image(self, i: int, *, max_pixels: int | None = None):
        """Sample ``i`` decoded as an RGB ``PIL.Image`` (grayscale and alpha normalised at ingest)."""
        from PIL import Image

        if max_pixels is not None:
            Image.MAX_IMAGE_PIXELS = max_pixels
        with Image.open(io.BytesIO(self.sample_bytes(i))) as img:
            if img.mode == "RGB":  # what ingest stores: decoded as it is, without convert's copy
                img.load()
                return img
            return img.convert("RGB")

    def torch_dataset(self, split: str = "train", transform: Callable[[Any], Any] | None = None,
                      indices: Sequence[int] | None = None):
        """A ``torch.utils.data.Dataset`` over a split (see :class:`SampleDataset`)."""
        return SampleDataset(self, self.split(split) if indices is None else np.asarray(indices), transform)

    def __getstate__(self) -> dict[str, Any]:  # picklable for DataLoader workers: drop the open handle
        state = self.__dict__.copy()
        state["_fh"] = None
        state["_fh_pid"] = None
        return state


class SampleDataset:
    """Lazily decoded samples of one split, in index order. Yields ``(sample, target)``.

    Images are decoded to RGB and passed through ``transform`` (a backbone's preprocessing); text samples
    are raw strings for the backbone's tokenizer; features datasets yield float32 rows. Works in parallel
    DataLoader workers (each opens its own file handle).
    """

    def __init__(self, stored: StoredDataset, indices: np.ndarray, transform: Callable[[Any], Any] | None) -> None:
        self.stored = stored
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform
        self._features = stored.features() if stored.modality == "features" else None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        i = int(self.indices[k])
        modality = self.stored.modality
        if modality == "image":
            sample: Any = self.stored.image(i)
        elif modality == "text":
            sample = self.stored.text(i)
        else:
            sample = np.asarray(self._features[i], dtype=np.float32)
        if self.transform is not None:
            sample = self.transform(sample)
        return sample, self.stored.labels[i]
