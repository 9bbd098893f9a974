"""The content-addressed embedding cache.

key = sha256 over (dataset digest, weights digest, layer, preprocessing digest, split). The array is the
artifact ``embeddings/<key[:2]>/<key>.npy``; an :class:`EmbeddingIndex` (the service's database table,
behind this protocol: this package knows no database) records where each key's array lives. Because the
artifact key is a function of the cache key and writes are atomic, the artifact is the truth and the index
a catalogue: a hit loads the array without building the model; a per-key lock (``locks``, owned by the
runtime) makes concurrent requests of one process compute once, and the index's insert-or-ignore on the
unique key makes concurrent processes agree on one row.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any, Protocol

import numpy as np

from app.backbones.base import BackboneAdapter, BackboneSpec
from app.backbones.preprocess import preprocess_digest
from app.datasets.stored import StoredDataset
from app.embeddings.pipeline import HEAD_OUTPUTS, SOURCE_PROBS, EmbedOptions, Progress, embed_samples
from app.storage import ArtifactStore, content_key

AdapterFactory = Callable[[BackboneSpec], BackboneAdapter]

Locks = Callable[[str], threading.Lock]


class EmbeddingIndex(Protocol):
    """Where cached arrays are recorded (implemented by the service over its ``embeddings`` table)."""

    def artifact(self, key: str) -> str | None:
        """The artifact key recorded for cache ``key``, or ``None``."""

    def record(self, entry: dict[str, Any]) -> None:
        """Record a computed array (insert-or-ignore on ``entry["cache_key"]``)."""


def _own_locks() -> Locks:
    locks: dict[str, threading.Lock] = {}
    guard = threading.Lock()

    def lock(key: str) -> threading.Lock:
        with guard:
            return locks.setdefault(key, threading.Lock())

    return lock


def cache_key(dataset_digest: str, weights_digest: str, layer: str, preprocess_digest: str, split: str) -> str:
    for name, value in (("dataset_digest", dataset_digest), ("weights_digest", weights_digest),
                        ("layer", layer), ("preprocess_digest", preprocess_digest), ("split", split)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    payload = json.dumps([dataset_digest, weights_digest, layer, preprocess_digest, split])
    return hashlib.sha256(payload.encode()).hexdigest()


def artifact_key(key: str) -> str:
    return content_key("embeddings", key, ".npy")


def _cached(index: EmbeddingIndex, store: ArtifactStore, key: str) -> np.ndarray | None:
    target = index.artifact(key) or artifact_key(key)
    if not store.exists(target):
        return None
    return store.get_array(target)


def embed_dataset(index: EmbeddingIndex, store: ArtifactStore, stored: StoredDataset, dataset_digest: str,
                  adapter_or_spec: BackboneAdapter | BackboneSpec, layers: Sequence[str], split: str = "train",
                  *, adapter_factory: AdapterFactory | None = None, options: EmbedOptions = EmbedOptions(),
                  progress: Progress | None = None, locks: Locks | None = None) -> dict[str, np.ndarray]:
    """``{layer: float32 (n_split, dim)}`` from the cache, computing (in one pass) only what is missing.

    ``adapter_or_spec``: a ready adapter, or a spec plus ``adapter_factory`` (called only on a miss, so a
    hit never loads the model). ``layers`` may include the source head's outputs (:data:`HEAD_OUTPUTS`). ``locks`` gives one lock per
    key (the runtime's, shared by every job of the process; a private set when omitted). The index's
    transaction is the caller's.
    """
    lock = locks or _own_locks()
    spec = adapter_or_spec if isinstance(adapter_or_spec, BackboneSpec) else adapter_or_spec.spec
    if not spec.weights_digest:
        raise ValueError(f"backbone {spec.id} has no weights digest; its embeddings cannot be cached")
    layers = list(dict.fromkeys(layers))
    if not layers:
        raise ValueError("embed_dataset needs at least one layer")
    known = {ly.name for ly in spec.layers} | set(HEAD_OUTPUTS)
    unknown = [name for name in layers if name not in known]
    if unknown:
        raise ValueError(f"backbone {spec.id} has no layer(s) {unknown}; layers: {sorted(known - set(HEAD_OUTPUTS))}")
    pre = preprocess_digest(spec.preprocessing)
    keys = {name: cache_key(dataset_digest, spec.weights_digest, name, pre, split) for name in layers}
    result: dict[str, np.ndarray] = {}
    for name, key in keys.items():
        hit = _cached(index, store, key)
        if hit is not None:
            result[name] = hit
    missing = [name for name in layers if name not in result]
    if not missing:
        if progress is not None:
            n = len(stored.split(split))
            progress(n, n)
        return {name: result[name] for name in layers}
    with ExitStack() as stack:
        for key in sorted(keys[name] for name in missing):  # sorted: two requests never wait on each other
            stack.enter_context(lock(key))
        for name in list(missing):  # another thread may have computed it while we waited
            hit = _cached(index, store, keys[name])
            if hit is not None:
                result[name] = hit
                missing.remove(name)
        if missing:
            adapter = adapter_or_spec if not isinstance(adapter_or_spec, BackboneSpec) else _build(spec, adapter_factory)
            dataset = stored.torch_dataset(split, transform=adapter.transform)
            computed = embed_samples(adapter, dataset, missing, options=options, progress=progress)
            for name in missing:
                array = np.ascontiguousarray(computed[name], dtype=np.float32)
                key = keys[name]
                store.put_array(artifact_key(key), array)
                result[name] = array
                index.record(dict(
                    cache_key=key, dataset_digest=dataset_digest, backbone_id=spec.id,
                    weights_digest=spec.weights_digest, layer=name, preprocess_digest=pre, split=split,
                    artifact_key=artifact_key(key), num_samples=int(array.shape[0]), dim=int(array.shape[1]),
                    size_bytes=store.size(artifact_key(key)),
                ))
    return {name: result[name] for name in layers}


def _build(spec: BackboneSpec, factory: AdapterFactory | None) -> BackboneAdapter:
    if factory is None:
        raise ValueError(f"embeddings of {spec.id} are not cached and no adapter_factory was given to compute them")
    return factory(spec)


def source_head(index: EmbeddingIndex, store: ArtifactStore, stored: StoredDataset, dataset_digest: str,
                adapter_or_spec: BackboneAdapter | BackboneSpec, outputs: Sequence[str] = HEAD_OUTPUTS,
                split: str = "train", **kwargs) -> dict[str, np.ndarray]:
    """The source head's outputs on a split, ``{output: (n_split, source_classes)}`` for each of ``outputs``
    (:data:`SOURCE_PROBS`, :data:`SOURCE_LOGITS`), cached like layers; what is missing costs one head pass."""
    bad = [name for name in outputs if name not in HEAD_OUTPUTS]
    if bad or not outputs:
        raise ValueError(f"outputs must be a non-empty subset of {list(HEAD_OUTPUTS)}, got {list(outputs)}")
    return embed_dataset(index, store, stored, dataset_digest, adapter_or_spec, list(outputs), split, **kwargs)


def source_probs(index: EmbeddingIndex, store: ArtifactStore, stored: StoredDataset, dataset_digest: str,
                 adapter_or_spec: BackboneAdapter | BackboneSpec, split: str = "train", **kwargs) -> np.ndarray:
    """Softmax of the source head ``(n_split, source_classes)`` on a split (LEEP/NCE), cached like a layer."""
    return source_head(index, store, stored, dataset_digest, adapter_or_spec, [SOURCE_PROBS], split,
                       **kwargs)[SOURCE_PROBS]
