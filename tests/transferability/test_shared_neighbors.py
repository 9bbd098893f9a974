"""``shared_neighbor_lists``: the k-NN metrics of one feature matrix find its neighbours once per process,
with the same values as lists computed afresh."""

from __future__ import annotations

import numpy as np
import pytest

from app.transferability import _neighbors, knn_accuracy, task_difficulty
from app.transferability._neighbors import neighbor_lists, others, shared_neighbor_lists
from app.transferability.baselines import knn_accuracy_resampled


@pytest.fixture(autouse=True)
def _empty_memo():
    _neighbors._shared.clear()
    yield
    _neighbors._shared.clear()


def _data(n=300, d=6, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(size=(n, d)) + y[:, None] * 0.7
    x[5] = x[6]  # a duplicate row, and ties of distance
    return x, y.astype(np.int64)


@pytest.mark.parametrize("m", [1, 3, 11, 48, 60, 300])
def test_a_prefix_of_a_longer_list_gives_the_fresh_lists_neighbours(m):
    x, y = _data()
    shared = shared_neighbor_lists(x, y, 60)  # remembered with 60; smaller requests are its prefixes
    got = shared_neighbor_lists(x, y, m)
    fresh = neighbor_lists(x, y, m)
    assert got.index.shape == fresh.index.shape
    for k in sorted({1, min(m, 299) - 1, min(m, 299)} - {0}):
        if k < x.shape[0]:
            gi, gd = others(got, k)
            fi, fd = others(fresh, k)
            np.testing.assert_array_equal(gi, fi)
            np.testing.assert_array_equal(gd, fd)
    if m <= 60:  # served from the remembered list
        np.testing.assert_array_equal(got.valid, np.minimum(shared.valid, m))


def test_the_knn_metrics_compute_the_neighbours_once(monkeypatch):
    x, y = _data(seed=1)
    x = x.astype(np.float32)  # embeddings are float32; every metric validates them to the same float64
    expected = (knn_accuracy(x, y), task_difficulty(x, y).knn_error)
    _neighbors._shared.clear()
    calls = []
    real = _neighbors.neighbor_lists
    monkeypatch.setattr(_neighbors, "neighbor_lists", lambda *a: calls.append(a[2]) or real(*a))
    assert knn_accuracy(x, y) == expected[0]
    assert task_difficulty(x, y).knn_error == expected[1]
    kernel = knn_accuracy_resampled(x, y)
    assert kernel(np.ones(x.shape[0], dtype=np.int64)) == expected[0]
    assert calls == [_neighbors.SHARED_MIN_LIST]


def test_a_callers_later_change_does_not_reach_the_remembered_lists():
    x, y = _data(seed=2)
    before = knn_accuracy(x, y)
    original = x.copy()
    x *= -3.0
    x[:, 0] += np.arange(x.shape[0])  # new content: new lists
    changed = knn_accuracy(x, y)
    _neighbors._shared.clear()
    assert changed == knn_accuracy(x, y)
    assert knn_accuracy(original, y) == before


def test_the_memo_keeps_within_its_byte_budget(monkeypatch):
    monkeypatch.setattr(_neighbors, "SHARED_BYTES", 3 * neighbor_lists(*_data(seed=0), 48).nbytes)
    for seed in range(6):
        shared_neighbor_lists(*_data(seed=seed), 5)
    assert 1 <= len(_neighbors._shared) <= 3
    assert sum(v.nbytes for v in _neighbors._shared.values()) <= _neighbors.SHARED_BYTES


def test_an_input_too_large_to_keep_is_neither_kept_nor_copied(monkeypatch):
    x, y = _data(seed=3)
    monkeypatch.setattr(_neighbors, "SHARED_BYTES", x.nbytes)  # its lists cannot fit
    lists = shared_neighbor_lists(x, y, 11)
    assert not _neighbors._shared and lists.x is x
    np.testing.assert_array_equal(others(lists, 5)[0], others(neighbor_lists(x, y, 11), 5)[0])
