"""Stabilised Sinkhorn with ε-scaling, for the entropic OT problems of ``otdd``.

Plain Sinkhorn multiplies ``exp(−C/ε)``, which underflows to 0 once ``C/ε`` exceeds ~745 and then returns
a meaningless plan (POT's ``method="sinkhorn"`` did, and ``otdd`` answered 0.0). Here no ε underflows: ε is
annealed geometrically from the largest cost down to its target (ε-scaling, as geomloss does) so that small
ε converges in a moderate number of iterations, and the iterates are kept in one of two equivalent forms:

* **log domain** (GPU tensors, and CPU ones with ``form="log"``, the CPU path before the scaling form): the
  dual potentials are updated with log-sum-exp, one exponential of the n × m matrix per half-iteration;
* **scaling form with absorption** (CPU, numpy; Schmitzer 2019, §3): the potentials are split into
  absorbed parts ``F, G`` and scalings ``u = exp((f − F)/ε)``, ``v = exp((g − G)/ε)``; a half-iteration is
  one matrix–vector product with the stabilised kernel ``K = exp((F ⊕ G − C)/ε)``, and the scalings are
  absorbed into ``F, G`` (one exponential) whenever one leaves ``[e^−τ, e^τ]`` and at every change of ε.
  Before each kernel is built, one log-domain update makes every row and column of ``K`` hold at least one
  entry of order 1, so no row underflows. The iterates are the log domain's, rounding aside (test:
  ``test_scaling_form_equals_log_domain``); a half-iteration costs a matrix–vector product instead of an
  exponential of the matrix, ~10× less on the service's 256 × 512 problems.

numpy's element-wise kernels are single-threaded, whereas torch's OpenMP pool collapses on a shared machine
(measured on the loaded 2-core development machine: 82 s with torch's default threads vs 3.6 s with one,
for the same 200 × 200 problem), so CPU tensors are iterated in numpy. Inputs are trusted float64 tensors
(validated by the caller).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["SinkhornResult", "log_sinkhorn", "log_sinkhorn_symmetric"]

#: scalings are absorbed into the potentials once |log u| or |log v| exceeds this (u·K·v stays far from
#: float64's range: K's entries are at most max(n, m)² after a log-domain update)
ABSORB_LOG = 30.0


def _lse(x, dim: int):
    """log Σ exp along ``dim``, stabilised by the maximum (``x`` is not modified)."""
    if isinstance(x, np.ndarray):
        top = x.max(axis=dim, keepdims=True)
        return np.log(np.exp(x - top).sum(axis=dim)) + np.squeeze(top, axis=dim)
    return torch.logsumexp(x, dim=dim)


def _exp(x):
    return np.exp(x) if isinstance(x, np.ndarray) else torch.exp(x)


class _Softmin:
    """``−e·log Σ_j w_j exp((v_j − C_ij)/e)`` for every row ``i`` of a cost matrix, in numpy, with one
    preallocated work array and the cost divided by ``e`` once per ``e`` (the generic path allocates five
    n × m temporaries per call). Equal to the generic expression up to rounding."""

    def __init__(self, cost: np.ndarray) -> None:
        self.cost = cost
        self.buf = np.empty_like(cost)
        self.e: float | None = None
        self.scaled = cost

    def __call__(self, v: np.ndarray, e: float, log_w: float) -> np.ndarray:
        if e != self.e:
            self.scaled, self.e = self.cost / e, e
        buf = self.buf
        np.subtract(v / e, self.scaled, out=buf)
        top = buf.max(axis=1)
        buf -= top[:, None]
        np.exp(buf, out=buf)
        return -e * (np.log(buf.sum(axis=1)) + top + log_w)


@dataclass(frozen=True)
class SinkhornResult:
    """Primal transport cost ⟨P, C⟩ of the entropic plan, whether the marginals met ``tol``, the
    iterations at the target ε, and the final L1 marginal error."""

    cost: float
    converged: bool
    n_iter: int
    marginal_error: float


class _LogDomain:
    """Potentials ``f, g`` updated by log-sum-exp: in numpy for a CPU tensor (one work array, see
    :class:`_Softmin`), in torch on its device otherwise."""

    def __init__(self, cost, in_numpy: bool | None = None) -> None:
        n, m = cost.shape
        self.n, self.m = n, m
        self.log_a, self.log_b = -math.log(n), -math.log(m)
        if cost.device.type == "cpu" if in_numpy is None else in_numpy:
            self.cost = cost.detach().numpy()
            rows, cols = _Softmin(self.cost), _Softmin(np.ascontiguousarray(self.cost.T))
            self.softmin_f = lambda g, e: rows(g, e, self.log_b)  # over the columns of each row
            self.softmin_g = lambda f, e: cols(f, e, self.log_a)  # over the rows of each column
            self.f, self.g = np.zeros(n), np.zeros(m)
        else:
            self.cost = cost
            self.softmin_f = lambda g, e: -e * _lse((g[None, :] - cost) / e + self.log_b, 1)
            self.softmin_g = lambda f, e: -e * _lse((f[:, None] - cost) / e + self.log_a, 0)
            self.f = torch.zeros(n, dtype=cost.dtype, device=cost.device)
            self.g = torch.zeros(m, dtype=cost.dtype, device=cost.device)

    def update(self, e: float, w: float) -> None:
        g_new = self.softmin_g(self.f, e)
        self.g = g_new if w == 1.0 else (1.0 - w) * self.g + w * g_new
        f_new = self.softmin_f(self.g, e)
        self.f = f_new if w == 1.0 else (1.0 - w) * self.f + w * f_new

    def _log_plan(self, e: float):
        return (self.f[:, None] + self.g[None, :] - self.cost) / e + (self.log_a + self.log_b)

    def marginal_error(self, e: float) -> float:
        log_plan = self._log_plan(e)
        rows, cols = _exp(_lse(log_plan, 1)), _exp(_lse(log_plan, 0))
        err = float(abs(rows - 1.0 / self.n).sum() + abs(cols - 1.0 / self.m).sum())
        return err if math.isfinite(err) else math.inf

    def save(self, e: float):
        return self.f, self.g

    def restore(self, saved, e: float) -> None:
        self.f, self.g = saved

    def transport_cost(self, e: float) -> float:
        return float((_exp(self._log_plan(e)) * self.cost).sum())


def _kernel(f: np.ndarray, g: np.ndarray, cost: np.ndarray, e: float, out: np.ndarray) -> np.ndarray:
    """The stabilised kernel ``exp((f ⊕ g − C)/e)`` written into ``out`` (one exponential, no temporaries)."""
    np.add(f[:, None], g[None, :], out=out)
    out -= cost
    out /= e
    return np.exp(out, out=out)


class _Scaling:
    """The same iterates in scaling form with absorption (numpy): ``f = F + e·log u``, ``g = G + e·log v``,
    plan ``P = a·b·diag(u) K diag(v)`` with ``K = exp((F ⊕ G − C)/e)`` and uniform weights ``a = 1/n``,
    ``b = 1/m``. The g-update ``v ← 1/(a Kᵀu)`` and the f-update ``u ← 1/(b K v)`` are the log domain's
    soft-min updates written for the scalings; over-relaxation ``log v ← (1−ω) log v + ω log v'`` likewise."""

    def __init__(self, cost: np.ndarray) -> None:
        n, m = cost.shape
        self.cost, self.n, self.m = cost, n, m
        self.log_a, self.log_b = -math.log(n), -math.log(m)
        self.rows, self.cols = _Softmin(cost), _Softmin(np.ascontiguousarray(cost.T))
        self.F, self.G = np.zeros(n), np.zeros(m)
        self.u, self.v = np.ones(n), np.ones(m)
        self.kernel = np.empty_like(cost)
        self.e: float | None = None

    def _potentials(self) -> tuple[np.ndarray, np.ndarray]:
        e = self.e
        if e is None:
            return self.F, self.G
        return self.F + e * np.log(self.u), self.G + e * np.log(self.v)

    def _rebuild(self, f: np.ndarray, g: np.ndarray, e: float) -> None:
        """Absorb everything into ``F, G`` after one log-domain update at ``e``, and rebuild ``K``."""
        g = self.cols(f, e, self.log_a)
        f = self.rows(g, e, self.log_b)
        self._absorb(f, g, e)

    def _absorb(self, f: np.ndarray, g: np.ndarray, e: float) -> None:
        """``F, G ← f, g``; scalings 1; ``K`` rebuilt at ``e`` (in place: one exponential)."""
        self.F, self.G, self.e = f, g, e
        self.u, self.v = np.ones(self.n), np.ones(self.m)
        _kernel(f, g, self.cost, e, self.kernel)

    def update(self, e: float, w: float) -> None:
        if e != self.e:
            self._rebuild(*self._potentials(), e)
            if w == 1.0:
                return  # the rebuild's log-domain update is this iteration
        u_new, v_new, lu, lv = self._step(w)
        if not (np.isfinite(lu).all() and np.isfinite(lv).all()):
            # a scaling left float64's range in one step (not seen with τ = 30): absorb the state before
            # it into a fresh kernel and take the step again; failing that, take it in the log domain
            self._absorb(*self._potentials(), e)
            u_new, v_new, lu, lv = self._step(w)
            if not (np.isfinite(lu).all() and np.isfinite(lv).all()):
                self._rebuild(*self._potentials(), e)
                return
        self.u, self.v = u_new, v_new
        if max(float(abs(lu).max()), float(abs(lv).max())) > ABSORB_LOG:
            self._absorb(self.F + e * lu, self.G + e * lv, e)

    def _step(self, w: float):
        """One g-then-f update of the scalings, over-relaxed by ``w``: (u, v, log u, log v)."""
        k, u, v = self.kernel, self.u, self.v
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            v_new = self.n / (k.T @ u)  # 1 / (a · Kᵀu)
            v_new = v_new if w == 1.0 else v ** (1.0 - w) * v_new ** w
            u_new = self.m / (k @ v_new)  # 1 / (b · K v)
            u_new = u_new if w == 1.0 else u ** (1.0 - w) * u_new ** w
            return u_new, v_new, np.log(u_new), np.log(v_new)

    def marginal_error(self, e: float) -> float:
        k, ab = self.kernel, 1.0 / (self.n * self.m)
        rows = ab * self.u * (k @ self.v)
        cols = ab * self.v * (k.T @ self.u)
        err = float(abs(rows - 1.0 / self.n).sum() + abs(cols - 1.0 / self.m).sum())
        return err if math.isfinite(err) else math.inf

    def save(self, e: float):
        return self._potentials()

    def restore(self, saved, e: float) -> None:
        self._absorb(*saved, e)

    def transport_cost(self, e: float) -> float:
        return float(self.u @ ((self.kernel * self.cost) @ self.v)) / (self.n * self.m)


def _scaling_form(cost: torch.Tensor, form: str) -> bool:
    if form not in ("auto", "log", "scaling"):
        raise ValueError(f"form must be 'auto', 'log' or 'scaling', got {form!r}")
    if form == "scaling" and cost.device.type != "cpu":
        raise ValueError("form='scaling' iterates in numpy: pass a CPU tensor")
    return form == "scaling" or (form == "auto" and cost.device.type == "cpu")


def log_sinkhorn(cost: torch.Tensor, eps: float, *, max_iter: int = 10_000, tol: float = 1e-4,
                 scaling: float = 0.5, omega: float = 1.9, check_every: int = 10, stage_iter: int = 50,
                 stage_tol: float = 1e-2, form: str = "auto") -> SinkhornResult:
    """Entropic OT between uniform marginals on ``cost`` (n, m) at regularisation ``eps`` (absolute).

    After the ε-scaling warm start, the updates at the target ε are over-relaxed,
    ``f ← (1−ω) f + ω T(f)`` (Thibault et al. 2017; ω = 1 is plain Sinkhorn), which speeds the linear
    convergence of small-ε problems by an order of magnitude. Every ``check_every`` iterations the L1 error
    of both marginals is measured; if it grew, the potentials return to the last check and ω is halved
    towards 1, so the iteration cannot diverge. Stops when the error is at most ``tol``, or after
    ``max_iter`` iterations at the target ε (then ``converged`` is False). ``form="auto"`` iterates CPU
    tensors in scaling form with absorption and others in the log domain (module docstring: the same
    iterates); ``"log"`` or ``"scaling"`` (CPU only) choose one.
    """
    state = _Scaling(cost.detach().numpy()) if _scaling_form(cost, form) else _LogDomain(cost)

    # ε-scaling: each stage is iterated to a loose marginal error (at most ``stage_iter`` iterations), so
    # that the next, smaller ε starts from nearly optimal potentials; one update per stage (geomloss)
    # leaves the final small-ε phase far from the optimum, where plain Sinkhorn barely moves.
    e = max(float(cost.max()), eps)
    while e > eps:
        for k in range(stage_iter):
            state.update(e, 1.0)
            if k % 5 == 4 and state.marginal_error(e) <= stage_tol:
                break
        e *= scaling
    state.update(eps, 1.0)
    error = state.marginal_error(eps)
    saved, saved_error = state.save(eps), error
    it = 0
    while error > tol and it < max_iter:
        state.update(eps, omega)
        it += 1
        if it % check_every == 0 or it == max_iter:
            error = state.marginal_error(eps)
            if error > saved_error and omega > 1.0:
                state.restore(saved, eps)
                error = saved_error
                omega = 1.0 if omega - 1.0 < 0.05 else 1.0 + (omega - 1.0) / 2.0
            else:
                saved, saved_error = state.save(eps), error
    return SinkhornResult(cost=state.transport_cost(eps), converged=error <= tol, n_iter=it,
                          marginal_error=error)


class _SymmetricLogDomain:
    """One potential ``f`` of the symmetric problem, averaged update by log-sum-exp (numpy on the CPU)."""

    def __init__(self, cost, in_numpy: bool | None = None) -> None:
        self.n = cost.shape[0]
        self.log_a = -math.log(self.n)
        if cost.device.type == "cpu" if in_numpy is None else in_numpy:
            self.cost = cost.detach().numpy()
            softmin = _Softmin(self.cost)
            self.t_map = lambda f, e: softmin(f, e, self.log_a)
            self.f = np.zeros(self.n)
        else:
            self.cost = cost
            self.t_map = lambda f, e: -e * _lse((f[None, :] - cost) / e + self.log_a, 1)
            self.f = torch.zeros(self.n, dtype=cost.dtype, device=cost.device)

    def update(self, e: float) -> None:
        self.f = 0.5 * (self.f + self.t_map(self.f, e))

    def _log_plan(self, e: float):
        return (self.f[:, None] + self.f[None, :] - self.cost) / e + 2.0 * self.log_a

    def marginal_error(self, e: float) -> float:
        rows = _exp(_lse(self._log_plan(e), 1))
        err = float(2.0 * abs(rows - 1.0 / self.n).sum())  # columns equal rows by symmetry
        return err if math.isfinite(err) else math.inf

    def transport_cost(self, e: float) -> float:
        return float((_exp(self._log_plan(e)) * self.cost).sum())


class _SymmetricScaling:
    """The symmetric iterates in scaling form (numpy): ``f = F + e·log u``, ``K = exp((F ⊕ F − C)/e)``;
    ``T(f)`` is ``u' = 1/(a K u)`` and the averaged update ``log u ← ½(log u + log u')``. A change of ``e``
    is taken as one log-domain update (the ε-scaling stages are one update each) before ``K`` is rebuilt."""

    def __init__(self, cost: np.ndarray) -> None:
        self.cost, self.n = cost, cost.shape[0]
        self.log_a = -math.log(self.n)
        self.softmin = _Softmin(cost)
        self.F, self.u = np.zeros(self.n), np.ones(self.n)
        self.kernel: np.ndarray | None = None
        self.e: float | None = None

    def _potential(self) -> np.ndarray:
        return self.F if self.e is None else self.F + self.e * np.log(self.u)

    def _absorb(self, f: np.ndarray, e: float) -> None:
        self.F, self.e, self.u = f, e, np.ones(self.n)
        out = self.kernel if self.kernel is not None else np.empty_like(self.cost)
        self.kernel = _kernel(f, f, self.cost, e, out)

    def update(self, e: float) -> None:
        if e != self.e:
            f = self._potential()
            self.F, self.e, self.u = 0.5 * (f + self.softmin(f, e, self.log_a)), e, np.ones(self.n)
            self.kernel = None  # built when the next update stays at this e
            return
        if self.kernel is None:
            self._absorb(self.F, e)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            u = np.sqrt(self.u * (self.n / (self.kernel @ self.u)))
            lu = np.log(u)
        if not np.isfinite(lu).all():  # (not seen: absorption keeps u in e^±τ) this one in the log domain
            f = self._potential()
            self._absorb(0.5 * (f + self.softmin(f, e, self.log_a)), e)
            return
        self.u = u
        if float(abs(lu).max()) > ABSORB_LOG:
            self._absorb(self.F + e * lu, e)

    def _plan_rows(self, e: float) -> np.ndarray:
        if self.kernel is None:
            self._absorb(self.F, e)
        return self.u * (self.kernel @ self.u) / (self.n * self.n)

    def marginal_error(self, e: float) -> float:
        err = float(2.0 * abs(self._plan_rows(e) - 1.0 / self.n).sum())
        return err if math.isfinite(err) else math.inf

    def transport_cost(self, e: float) -> float:
        self._plan_rows(e)
        return float(self.u @ ((self.kernel * self.cost) @ self.u)) / (self.n * self.n)


def log_sinkhorn_symmetric(cost: torch.Tensor, eps: float, *, max_iter: int = 10_000, tol: float = 1e-4,
                           scaling: float = 0.5, check_every: int = 10, form: str = "auto") -> SinkhornResult:
    """Entropic OT of a uniform measure with itself (``cost`` square and symmetric) at ``eps``.

    The optimal potentials are equal (f = g), so one potential is iterated with the averaged update
    ``f ← ½(f + T(f))`` (Feydy et al.'s symmetric Sinkhorn). Alternating f / g updates converge very
    slowly here when the sample is clustered (the plan is nearly block-diagonal and the relative scale
    of the blocks is a near-flat direction); the symmetric update has no such direction. ``form`` as in
    :func:`log_sinkhorn`.
    """
    state = _SymmetricScaling(cost.detach().numpy()) if _scaling_form(cost, form) else _SymmetricLogDomain(cost)
    e = max(float(cost.max()), eps)
    while e > eps:
        state.update(e)
        e *= scaling
    error = math.inf
    it = 0
    while it < max_iter:
        state.update(eps)
        it += 1
        if it % check_every == 0 or it == max_iter:
            error = state.marginal_error(eps)
            if error <= tol:
                break
    return SinkhornResult(cost=state.transport_cost(eps), converged=error <= tol, n_iter=it,
                          marginal_error=error)
