"""Shared synthetic data for the metric tests (small N keeps the suite fast)."""

import numpy as np
import pytest


def make_classification(n=120, d=6, c=3, seed=0, sep=1.5):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    rng.shuffle(y)
    centers = rng.normal(size=(c, d)) * sep
    f = centers[y] + rng.normal(size=(n, d))
    return f, y


def make_probs(n=120, cs=5, c=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    logits = rng.normal(size=(n, cs))
    logits[np.arange(n), y % cs] += 2.0
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True), y


@pytest.fixture
def clf_data():
    return make_classification()
