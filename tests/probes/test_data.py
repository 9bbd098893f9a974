"""Probe data is decoded once per row, never during training steps, and shared across units by key."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from app.probes import ProbeBudget, run_arm
from app.probes.data import ProbeData, ProbeDataCache
from tests.kits.probes import ConvAdapter


class CountingImages(torch.utils.data.Dataset):
    """8×8 single-channel images whose "decode" (``__getitem__``) is counted per row."""

    def __init__(self, n: int) -> None:
        self.x = np.random.default_rng(0).normal(size=(n, 1, 8, 8)).astype(np.float32)
        self.calls: list[int] = []

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        self.calls.append(int(i))
        return torch.from_numpy(self.x[i]), 0


def test_rows_are_decoded_once_across_seeds_arms_and_steps():
    torch.set_num_threads(1)
    images = CountingImages(60)
    y = np.arange(60) % 2
    data = ProbeData(images, y, task_type="classification")
    budget = ProbeBudget(steps=30, eval_every=10, batch_size=8, lr_grid=(1e-2, 3e-2), max_samples=40)
    used: set[int] = set()
    for seed in (0, 1):
        for arm in ("finetune", "scratch"):
            run_arm(ConvAdapter("src"), "conv2", data, arm, seed, budget=budget, device="cpu")
        split = data.split(seed, val_fraction=budget.val_fraction, max_samples=40)
        used |= set(np.concatenate([split.train, split.val]).tolist())
    # 2 seeds × 2 arms × 2 rates × 30 steps read batches, yet each row was decoded exactly once, and only
    # the rows some seed used (max_samples) were decoded at all
    assert sorted(images.calls) == sorted(used) and len(images.calls) == len(set(images.calls))


def test_cache_builds_once_per_key_and_evicts_least_recent():
    cache = ProbeDataCache(max_entries=2)
    built = []

    def build(tag):
        def fn():
            built.append(tag)
            return ProbeData(torch.zeros(4, 2), [0, 1, 0, 1], task_type="classification")
        return fn

    a = cache.get("a", build("a"))
    assert cache.get("a", build("a")) is a and built == ["a"] and cache.hits == 1
    cache.get("b", build("b"))
    cache.get("a", build("a"))  # a is now the most recent
    cache.get("c", build("c"))  # evicts b
    assert len(cache) == 2 and cache.get("a", build("a")) is a
    cache.get("b", build("b"))
    assert built == ["a", "b", "c", "b"]
    with pytest.raises(ValueError, match="ProbeData"):
        cache.get("bad", lambda: [1, 2])
    with pytest.raises(ValueError, match="max_entries"):
        ProbeDataCache(max_entries=0)


def test_cache_is_safe_under_concurrent_units():
    cache = ProbeDataCache()
    builds = []
    gate = threading.Event()

    def build():
        gate.wait(1.0)
        builds.append(1)
        return ProbeData(torch.zeros(4, 2), [0, 1, 0, 1], task_type="classification")

    out = []
    threads = [threading.Thread(target=lambda: out.append(cache.get("k", build))) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len({id(d) for d in out}) == 1
