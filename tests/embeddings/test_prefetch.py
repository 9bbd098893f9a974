"""The embedding pipeline's prefetching thread: same results as without it, decoding overlapped with the
forward pass, producer errors raised in the caller, no thread left behind."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from app.backbones.catalogue import LoadContext, create_adapter, load_card
from app.embeddings import EmbedOptions, embed_samples
from app.embeddings.pipeline import _Prefetch
from app.storage import ArtifactStore
from tests.kits.backbones import make_stored_dataset, zoo_card


@pytest.fixture
def setup(tmp_path):
    spec = load_card(zoo_card(tmp_path / "models"))
    adapter = create_adapter(spec, LoadContext(models_dir=tmp_path / "models"))
    stored = make_stored_dataset(ArtifactStore(str(tmp_path / "artifacts")), "datasets/p", n=21)
    return adapter, stored


def _threads() -> int:
    return sum(t.name == "embed-prefetch" for t in threading.enumerate())


def test_prefetch_gives_the_same_arrays_as_none(setup):
    adapter, stored = setup
    data = stored.torch_dataset("all", adapter.transform)
    plain = embed_samples(adapter, data, ["stage2", "pool"], options=EmbedOptions(batch_size=4, prefetch=0,
                                                                                   device="cpu"))
    for depth in (1, 3):
        seen: list[int] = []
        got = embed_samples(adapter, data, ["stage2", "pool"], progress=lambda d, t, seen=seen: seen.append(d),
                            options=EmbedOptions(batch_size=4, prefetch=depth, device="cpu"))
        assert seen == [4, 8, 12, 16, 20, 21]
        for layer in ("stage2", "pool"):
            np.testing.assert_array_equal(got[layer], plain[layer])
    assert _threads() == 0


class _Slow(torch.utils.data.Dataset):
    """Every item takes ``delay`` seconds to 'decode' (sleeping releases the GIL, as PIL decoding does)."""

    def __init__(self, n: int, delay: float, fail_at: int | None = None) -> None:
        self.n, self.delay, self.fail_at = n, delay, fail_at

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if i == self.fail_at:
            raise OSError(f"truncated image {i}")
        time.sleep(self.delay)
        return torch.full((2,), float(i)), 0


def test_decoding_overlaps_the_consumer():
    loader = torch.utils.data.DataLoader(_Slow(8, 0.02), batch_size=2)  # 4 batches × 40 ms to decode

    def consume(batches):
        started = time.perf_counter()
        for _ in batches:
            time.sleep(0.04)  # 40 ms of "forward" per batch
        return time.perf_counter() - started

    serial = consume(loader)
    with _Prefetch(loader, 2, pin=False) as batches:
        overlapped = consume(batches)
    assert serial > 0.3  # 4 × (40 + 40) ms
    assert overlapped < 0.8 * serial


def test_producer_error_is_raised_in_the_caller_and_early_exit_stops_the_thread():
    loader = torch.utils.data.DataLoader(_Slow(10, 0.0, fail_at=5), batch_size=2)
    got = []
    with pytest.raises(OSError, match="truncated image 5"), _Prefetch(loader, 2, pin=False) as batches:
        for b in batches:
            got.append(b)
    assert len(got) == 2 and _threads() == 0
    with _Prefetch(torch.utils.data.DataLoader(_Slow(100, 0.0), batch_size=1), 1, pin=False) as batches:
        next(batches)  # leave early: the producer, blocked on a full queue, stops
    assert _threads() == 0


def test_prefetch_depth_is_validated():
    with pytest.raises(ValueError, match="prefetch"):
        EmbedOptions(prefetch=-1)
