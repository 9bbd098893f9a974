"""The Sinkhorn solvers behind ``otdd``: the scaling form (CPU) against the log domain, closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from app.transferability import _sinkhorn
from app.transferability._sinkhorn import log_sinkhorn, log_sinkhorn_symmetric


def _clustered_cost(n: int, m: int, seed: int, spread: float) -> torch.Tensor:
    """Half squared distances between two clustered clouds: the costs OTDD's outer problem sees (range ~10²)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=spread, size=(4, 6))
    x = centres[rng.integers(0, 4, n)] + rng.normal(size=(n, 6))
    y = centres[rng.integers(0, 4, m)] + rng.normal(size=(m, 6)) + 0.5
    return torch.from_numpy(0.5 * ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))


@pytest.mark.parametrize(("n", "m", "seed", "spread", "eps"),
                         [(40, 70, 0, 3.0, 0.1), (64, 48, 1, 5.0, 0.1), (30, 30, 2, 1.0, 0.5), (1, 25, 3, 2.0, 0.1),
                          (50, 1, 4, 2.0, 0.1)])
def test_scaling_form_equals_log_domain(n, m, seed, spread, eps):
    cost = _clustered_cost(n, m, seed, spread)
    log = log_sinkhorn(cost, eps, form="log")
    scaled = log_sinkhorn(cost, eps, form="scaling")
    assert log_sinkhorn(cost, eps) == scaled  # CPU tensors take the scaling form
    assert scaled.n_iter == log.n_iter  # the same iterates, rounding aside
    assert scaled.converged and log.converged
    assert scaled.cost == pytest.approx(log.cost, rel=1e-10, abs=1e-12)
    assert scaled.marginal_error == pytest.approx(log.marginal_error, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize(("n", "seed", "spread"), [(60, 5, 3.0), (35, 6, 0.5)])
def test_symmetric_scaling_form_equals_log_domain(n, seed, spread):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=spread, size=(4, 5))[rng.integers(0, 4, n)] + rng.normal(size=(n, 5))
    cost = torch.from_numpy(0.5 * ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    log = log_sinkhorn_symmetric(cost, 0.1, form="log")
    scaled = log_sinkhorn_symmetric(cost, 0.1)
    assert scaled.n_iter == log.n_iter and scaled.converged
    assert scaled.cost == pytest.approx(log.cost, rel=1e-10, abs=1e-12)


def test_the_torch_log_domain_of_the_gpu_path_equals_the_numpy_one(monkeypatch):
    # the GPU's iterates are torch's log domain: run that code on CPU tensors against the numpy log domain
    cost = _clustered_cost(40, 70, 0, 3.0)
    x = np.random.default_rng(9).normal(size=(40, 4))
    square = torch.from_numpy(0.5 * ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    in_numpy = log_sinkhorn(cost, 0.1, form="log"), log_sinkhorn_symmetric(square, 0.1, form="log")
    log_domain, symmetric = _sinkhorn._LogDomain, _sinkhorn._SymmetricLogDomain
    monkeypatch.setattr(_sinkhorn, "_LogDomain", lambda c: log_domain(c, in_numpy=False))
    monkeypatch.setattr(_sinkhorn, "_SymmetricLogDomain", lambda c: symmetric(c, in_numpy=False))
    in_torch = log_sinkhorn(cost, 0.1, form="log"), log_sinkhorn_symmetric(square, 0.1, form="log")
    for a, b in zip(in_numpy, in_torch, strict=True):
        assert a.n_iter == b.n_iter and a.converged and b.converged
        assert b.cost == pytest.approx(a.cost, rel=1e-9)


@pytest.mark.parametrize("form", ["log", "scaling"])
@pytest.mark.parametrize("eps", [0.05, 0.3, 2.0])
def test_two_point_closed_form(form, eps):
    # C = [[0, 1], [1, 0]], uniform marginals: P = [[p, q], [q, p]], p/q = e^{1/ε}, p + q = ½ → ⟨P, C⟩ = 1/(1 + e^{1/ε})
    cost = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    expected = 1.0 / (1.0 + math.exp(1.0 / eps))
    assert log_sinkhorn(cost, eps, tol=1e-12, form=form).cost == pytest.approx(expected, rel=1e-8, abs=1e-15)
    assert log_sinkhorn_symmetric(cost, eps, tol=1e-12, form=form).cost == pytest.approx(expected, rel=1e-8,
                                                                                          abs=1e-15)


@pytest.mark.parametrize("failures", [1, 2])
def test_a_step_that_leaves_float64_is_taken_again(monkeypatch, failures):
    # absorption keeps the scalings in e^±30, so no real problem overflows; force it: the first over-relaxed
    # step(s) return inf. One failure is retaken on a fresh kernel (same iterates); two fall back to one
    # log-domain step (an un-relaxed step: same fixed point, slightly different path)
    cost = _clustered_cost(40, 70, 0, 3.0)
    reference = log_sinkhorn(cost, 0.1, form="log")
    step = _sinkhorn._Scaling._step
    left = [failures]

    def overflowing(self, w):
        u, v, lu, lv = step(self, w)
        if w != 1.0 and left[0]:
            left[0] -= 1
            u, lu = u.copy(), lu.copy()
            u[0], lu[0] = math.inf, math.inf
        return u, v, lu, lv

    monkeypatch.setattr(_sinkhorn._Scaling, "_step", overflowing)
    result = log_sinkhorn(cost, 0.1)
    assert left == [0] and result.converged
    if failures == 1:
        assert result.n_iter == reference.n_iter
        assert result.cost == pytest.approx(reference.cost, rel=1e-10)
    else:
        assert result.cost == pytest.approx(reference.cost, rel=1e-4)


def test_form_is_validated():
    cost = torch.zeros((2, 2), dtype=torch.float64)
    with pytest.raises(ValueError, match="form"):
        log_sinkhorn(cost, 0.1, form="kernel")
    with pytest.raises(ValueError, match="form"):
        log_sinkhorn_symmetric(cost, 0.1, form="fast")
