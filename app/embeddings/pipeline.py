"""Batched embedding of a torch dataset at several layers in one pass.

A DataLoader collates batches (in worker processes when ``num_workers > 0``) and a prefetching thread
(:class:`_Prefetch`) keeps up to ``prefetch`` of them ready — decoded, transformed and, on CUDA, in pinned
memory so the adapter's ``non_blocking`` copy overlaps — while the adapter embeds the current one, so
decoding and preprocessing overlap inference instead of alternating with it. The adapter embeds under
``torch.inference_mode`` (inside ``embed``), on CUDA with channels_last (the adapter's ``to``) and autocast
(bf16 where supported, else fp16); results are float32 numpy arrays filled in dataset order, so identical
inputs give identical outputs. A CUDA out-of-memory error halves the batch and retries;
``progress(done, total)`` is called after every batch.

Stored images (a :class:`~app.datasets.stored.SampleDataset` whose transform is an
:class:`~app.backbones.preprocess.ImageTransform`, for an adapter whose ``collate`` stacks) take a batch path
(:class:`_StoredPixels`): each item is decoded, resized and cropped to uint8 pixels only, and the float
conversion and normalisation run once per batch (``ImageTransform.batch``), which gives the same bits as
stacking the per-image transform at a fraction of the per-image CPU.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from app.backbones.base import BackboneAdapter
from app.backbones.preprocess import ImageTransform
from app.datasets.stored import SampleDataset
from app.devices import autocast as amp_context
from app.devices import autocast_dtype, resolve_device

SOURCE_PROBS = "__source_probs__"
SOURCE_LOGITS = "__source_logits__"
#: the source head's outputs a caller may request next to real layers: its softmax (LEEP, NCE, PACTran) and
#: its raw logits (RSA, DDS: the reference representation of the same samples); one head pass gives both
HEAD_OUTPUTS = (SOURCE_PROBS, SOURCE_LOGITS)
#: the metric input each of them feeds (a :class:`~app.transferability.MetricSpec` input name → its output)
HEAD_INPUTS = {"source_probs": SOURCE_PROBS, "source_logits": SOURCE_LOGITS}
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EmbedOptions:
    batch_size: int = 128
    num_workers: int = 0
    device: str = "auto"
    amp: bool = True
    prefetch: int = 2

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be ≥ 0, got {self.num_workers}")
        if self.prefetch < 0:
            raise ValueError(f"prefetch must be ≥ 0 (0 = no prefetching thread), got {self.prefetch}")

    @classmethod
    def from_settings(cls, settings: Any) -> EmbedOptions:
        return cls(settings.embed_batch_size, settings.embed_num_workers, settings.device)


class _Collate:
    """Drops the labels and lets the adapter batch the samples (a class, so workers can receive it)."""

    def __init__(self, adapter: BackboneAdapter) -> None:
        self.collate = adapter.collate

    def __call__(self, items: Sequence[tuple[Any, Any]]) -> Any:
        return self.collate([sample for sample, _ in items])


class _StoredPixels:
    """The items of a stored image dataset as uint8 pixels (``transform.pixels``: decoded, resized, cropped);
    no label, no float work. Picklable, for DataLoader workers."""

    def __init__(self, samples: SampleDataset, transform: ImageTransform) -> None:
        self.stored = samples.stored
        self.indices = samples.indices
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> bytes:
        return self.transform.pixels(self.stored.image(int(self.indices[k])))


class _PixelBatch:
    """Collate for :class:`_StoredPixels`: the normalised float batch, in one pass (``transform.batch``)."""

    def __init__(self, transform: ImageTransform) -> None:
        self.transform = transform

    def __call__(self, items: Sequence[bytes]) -> torch.Tensor:
        return self.transform.batch(items)


def _loader_inputs(adapter: BackboneAdapter, dataset: Any) -> tuple[Any, Callable[[Sequence[Any]], Any]]:
    """The DataLoader's dataset and collate: the pixel batch path for stored images where it gives the same
    batch as ``adapter.collate`` of the transformed samples, else the dataset as it is."""
    transform = getattr(dataset, "transform", None)
    if (isinstance(dataset, SampleDataset) and dataset.stored.modality == "image"
            and isinstance(transform, ImageTransform) and getattr(adapter, "stacks_samples", False) is True):
        return _StoredPixels(dataset, transform), _PixelBatch(transform)
    return dataset, _Collate(adapter)


_DONE = object()


def _pin(batch: Any) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory()
    return {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class _Prefetch:
    """Iterate ``batches`` in a daemon thread, up to ``depth`` batches ahead (pinned when ``pin``).

    The consumer gets the batches in order; an exception in the producer is raised in the consumer at the
    point it happened; closing (or leaving the ``with`` block early) stops the producer.
    """

    def __init__(self, batches: Iterable[Any], depth: int, pin: bool) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(batches, pin), name="embed-prefetch",
                                        daemon=True)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, batches: Iterable[Any], pin: bool) -> None:
        try:
            for batch in batches:
                if not self._put(_pin(batch) if pin else batch):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
            return
        self._put(_DONE)

    def __enter__(self) -> Iterator[Any]:
        self._thread.start()
        return self._items()

    def _items(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def _rows(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    return int(next(iter(batch.values())).shape[0])


def _slice(batch: Any, a: int, b: int) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch[a:b]
    return {k: v[a:b] for k, v in batch.items()}


def _forward(adapter: BackboneAdapter, batch: Any, layers: list[str], head: list[str]) -> dict[str, torch.Tensor]:
    out = adapter.embed(batch, layers) if layers else {}
    if head:
        with torch.inference_mode():
            logits = adapter.source_logits(batch).float()
        if SOURCE_PROBS in head:
            out[SOURCE_PROBS] = logits.softmax(dim=-1)
        if SOURCE_LOGITS in head:
            out[SOURCE_LOGITS] = logits
    return out


def embed_samples(adapter: BackboneAdapter, dataset: Any, layers: Sequence[str], *,
                  options: EmbedOptions = EmbedOptions(), progress: Progress | None = None) -> dict[str, np.ndarray]:
    """``{layer: float32 (len(dataset), dim)}`` for a dataset yielding ``(sample, label)``.

    ``layers`` may include the source head's outputs (:data:`HEAD_OUTPUTS`: its softmax, its logits) next to
    real layers.
    """
    layers = list(dict.fromkeys(layers))
    head = [name for name in layers if name in HEAD_OUTPUTS]
    taps = [name for name in layers if name not in HEAD_OUTPUTS]
    if not layers:
        raise ValueError("embed_samples needs at least one layer")
    unknown = [name for name in taps if name not in adapter.layers()]
    if unknown:
        raise ValueError(f"backbone {adapter.spec.id} has no layer(s) {unknown}; layers: {adapter.layers()}")
    if head and not adapter.has_source_head:
        raise ValueError(f"backbone {adapter.spec.id} has no source head, so it has no source probabilities "
                         "or logits")
    device = resolve_device(options.device)
    autocast = amp_context(device, autocast_dtype(device, options.amp))
    adapter.to(device)
    total = len(dataset)
    out: dict[str, np.ndarray] = {}
    if total == 0:
        return {name: np.zeros((0, adapter.spec.layer(name).dim), np.float32) for name in taps} | (
            {name: np.zeros((0, 0), np.float32) for name in head})
    pin = device.type == "cuda"
    items, collate = _loader_inputs(adapter, dataset)
    loader = torch.utils.data.DataLoader(
        items, batch_size=options.batch_size, shuffle=False, num_workers=options.num_workers,
        collate_fn=collate, pin_memory=pin and options.num_workers > 0, persistent_workers=False,
    )
    if options.prefetch == 0:
        _embed_batches(adapter, loader, taps, head, autocast, options.batch_size, total, out, progress)
    else:
        with _Prefetch(loader, options.prefetch, pin=pin and options.num_workers == 0) as batches:
            _embed_batches(adapter, batches, taps, head, autocast, options.batch_size, total, out, progress)
    return {name: out[name] for name in layers}


def _embed_batches(adapter: BackboneAdapter, batches: Iterable[Any], taps: list[str], head: list[str],
                   autocast: Callable[[], Any], chunk: int, total: int, out: dict[str, np.ndarray],
                   progress: Progress | None) -> None:
    done = 0
    for batch in batches:
        n = _rows(batch)
        start = 0
        while start < n:
            stop = min(n, start + chunk)
            try:
                with autocast():
                    result = _forward(adapter, _slice(batch, start, stop), taps, head)
            except torch.cuda.OutOfMemoryError:
                if chunk == 1:
                    raise
                chunk = max(1, chunk // 2)  # halve and retry this part of the batch
                torch.cuda.empty_cache()
                continue
            for name, value in result.items():
                if name not in out:
                    out[name] = np.empty((total, value.shape[1]), dtype=np.float32)
                out[name][done + start: done + stop] = value.detach().float().cpu().numpy()
            start = stop
        done += n
        if progress is not None:
            progress(done, total)
