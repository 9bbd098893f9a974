"""Target data for a probe, and what one seed fixes for every arm: the subset, the inner split, the order.

A seed draws (deterministically) a stratified subset of the target *train* split, carves an inner
validation split from it, and fixes the order of the training batches. All arms of that seed see exactly
these rows in exactly this order — the pairing the verdict relies on. The outer validation/test split of
the dataset is never touched here.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from app.probes.evaluation import check_task_type


def _seed_stream(seed: int, purpose: int) -> np.random.Generator:
    # independent streams per purpose, so changing the batch size never moves the split
    return np.random.default_rng([int(seed), purpose])


@dataclass(frozen=True)
class SeedSplit:
    """Row indices (into the probe data) of one seed's inner train and validation parts."""

    seed: int
    train: np.ndarray
    val: np.ndarray

    @property
    def digest(self) -> str:
        h = hashlib.sha1(self.train.astype(np.int64).tobytes())
        h.update(b"|")
        h.update(self.val.astype(np.int64).tobytes())
        return h.hexdigest()[:16]


class ProbeData:
    """Samples and labels of the target train split, as the runner consumes them.

    ``samples`` is either a tensor whose rows are already model input (``(n, …)``, e.g. transformed
    images or feature vectors), a ``torch.utils.data.Dataset`` yielding ``(sample, target)`` pairs with the
    backbone's transform applied (what ``StoredDataset.torch_dataset(split, transform)`` returns), or a list
    of bare samples (e.g. strings for a text backbone). ``labels`` are class indices ``(n,)`` for
    classification and targets ``(n,)`` or ``(n, k)`` for regression.
    """

    def __init__(self, samples: Any, labels: Any, *, task_type: str, num_classes: int | None = None) -> None:
        self.task_type = check_task_type(task_type)
        if isinstance(samples, np.ndarray):
            samples = torch.from_numpy(np.ascontiguousarray(samples))
        self._samples = samples
        n = len(samples)
        labels = np.asarray(labels)
        if labels.shape[0] != n:
            raise ValueError(f"labels have {labels.shape[0]} rows for {n} samples")
        if n < 1:
            raise ValueError("probe data is empty")
        if self.task_type == "classification":
            if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) and not np.all(labels == np.round(labels)):
                raise ValueError(f"classification labels must be integer class indices (n,), got {labels.dtype} {labels.shape}")
            labels = labels.astype(np.int64)
            if labels.min() < 0:
                raise ValueError(f"class indices must be >= 0, got {int(labels.min())}")
            seen = int(labels.max()) + 1
            if num_classes is not None and num_classes < seen:
                raise ValueError(f"num_classes={num_classes} but labels go up to {seen - 1}")
            self.num_classes = int(num_classes or seen)
        else:
            labels = labels.astype(np.float32).reshape(n, -1)
            if not np.all(np.isfinite(labels)):
                raise ValueError("regression targets contain NaN or infinite values")
            self.num_classes = None
        self.labels = labels
        self._items: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def out_dim(self) -> int:
        return self.num_classes if self.num_classes is not None else int(self.labels.shape[1])

    # -- per-seed pairing ---------------------------------------------------------------------------
    def split(self, seed: int, *, val_fraction: float, max_samples: int | None = None) -> SeedSplit:
        """The seed's stratified subset and inner train/val split (same for every arm)."""
        if len(self) < 4:
            raise ValueError(f"a probe needs at least 4 target training samples, got {len(self)}")
        if self.num_classes is not None and self.num_classes < 2:
            raise ValueError("a classification probe needs at least 2 classes")
        rows = np.arange(len(self))
        strat = self.labels if self.task_type == "classification" else None
        rs = int(_seed_stream(seed, 0).integers(2**31 - 1))
        if max_samples is not None and max_samples < len(rows):
            rows = np.sort(_split(rows, strat, train_size=max_samples, random_state=rs)[0])
        strat = strat[rows] if strat is not None else None
        train, val = _split(rows, strat, test_size=val_fraction, random_state=rs + 1)
        return SeedSplit(int(seed), np.sort(train), np.sort(val))

    @staticmethod
    def batch_plan(n_train: int, steps: int, batch_size: int, seed: int) -> list[np.ndarray]:
        """Positions into the inner train part for each step: epochs of fresh permutations, seeded."""
        rng = _seed_stream(seed, 1)
        size = min(batch_size, n_train)
        plan: list[np.ndarray] = []
        while len(plan) < steps:
            perm = rng.permutation(n_train)
            for start in range(0, n_train - size + 1, size):
                plan.append(perm[start:start + size])
                if len(plan) == steps:
                    break
        return plan

    # -- model input --------------------------------------------------------------------------------
    def batch(self, rows: np.ndarray, collate) -> Any:
        """Collated model input for ``rows``; tensors are indexed directly, other samples collated."""
        if isinstance(self._samples, torch.Tensor):
            return self._samples[torch.as_tensor(rows, dtype=torch.long)]
        self.prepare(rows)
        return collate([self._items[int(i)] for i in rows])

    def prepare(self, rows: np.ndarray | None = None) -> None:
        """Decode ``rows`` (default: all) once and keep them: only the rows a seed uses are ever decoded."""
        if isinstance(self._samples, torch.Tensor):
            return
        wanted = range(len(self)) if rows is None else (int(i) for i in rows)
        for i in wanted:
            if i not in self._items:
                # a list holds bare samples; a Dataset yields (sample, target) pairs
                self._items[i] = self._samples[i] if isinstance(self._samples, (list, tuple)) else self._samples[i][0]

    def targets(self, rows: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(self.labels[rows])
        return t.long() if self.task_type == "classification" else t.float()


def _split(rows: np.ndarray, strat: np.ndarray | None, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        a, b = train_test_split(rows, stratify=strat, shuffle=True, **kw)
    except ValueError:  # a class too small to stratify: fall back to a plain random split
        a, b = train_test_split(rows, stratify=None, shuffle=True, **kw)
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"the inner split of {len(rows)} rows left one side empty; use more samples")
    return np.asarray(a), np.asarray(b)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move a collated batch (a tensor, a mapping such as tokenizer output, or a sequence) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if hasattr(batch, "to") and not isinstance(batch, (Mapping, Sequence)):
        return batch.to(device)
    if isinstance(batch, Mapping):
        moved = {k: to_device(v, device) for k, v in batch.items()}
        return type(batch)(moved) if not isinstance(batch, dict) else moved
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


class ProbeDataCache:
    """Probe data built once per key and reused by every unit that asks for it (in one process).

    The key is the caller's, and must name everything the decoded rows depend on — for the ranking job
    (dataset digest, split, the backbone's preprocessing) — so that the units of one job, and of later
    jobs on the same dataset, decode and transform each image once. Least recently used entries beyond
    ``max_entries`` are dropped. Thread-safe: concurrent units asking for one key build it once.
    """

    def __init__(self, max_entries: int = 8) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries!r}")
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, ProbeData] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Lock] = {}
        self.hits = 0
        self.builds = 0

    def get(self, key: Hashable, build: Callable[[], ProbeData]) -> ProbeData:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]
            gate = self._building.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._entries:
                    self.hits += 1
                    return self._entries[key]
            data = build()
            if not isinstance(data, ProbeData):
                raise ValueError(f"build() must return a ProbeData, got {type(data).__name__}")
            with self._lock:
                self.builds += 1
                self._entries[key] = data
                self._building.pop(key, None)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            return data

    def __len__(self) -> int:
        return len(self._entries)
