"""Operating characteristics of a :class:`~app.probes.sequential.SequentialDesign`, by simulation.

What lives here: a vectorised replay of the sequential rule (rounds, Holm across candidates, stopping,
futility) over many simulated jobs, and the figures it yields — verdict rates, false-claim family-wise
rates, coverage of the reported intervals, seeds used. It applies exactly the rule of
``sequential.look`` (the tests check the two agree job by job); it never trains anything and is not
used by the job itself — the lead's benchmark and the tests quote it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.enums import Verdict
from app.probes.sequential import SequentialDesign, design_interval, projected_half_width, sequential_p

VERDICT_CODES = (Verdict.inconclusive, Verdict.negative_transfer, Verdict.positive, Verdict.no_benefit)
STOP_CODES = ("continue", "settled", "max_seeds", "futile")


def seed_noise(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Unit-variance seed noise: ``"normal"``, ``"t3"`` (Student t, 3 df, scaled to variance 1: heavy
    tails, the kurtosis of a run that occasionally diverges) or ``"skewed"`` (centred lognormal, σ = 0.3:
    skewness ≈ 1). Stronger skew breaks the Gaussian-based rule: at lognormal σ = 0.5 (skewness ≈ 1.75)
    the false negative-transfer rate of one null candidate is ≈ 0.067, at σ = 0.75 (≈ 3.3) ≈ 0.090, so
    ``record`` warns when the observed Δ are strongly skewed."""
    if kind == "normal":
        return rng.standard_normal(shape)
    if kind == "t3":
        return rng.standard_t(3, shape) / np.sqrt(3.0)
    if kind == "skewed":
        s = 0.3
        z = rng.lognormal(0.0, s, shape)
        return (z - np.exp(s * s / 2)) / np.sqrt((np.exp(s * s) - 1) * np.exp(s * s))
    raise ValueError(f"noise must be 'normal', 't3' or 'skewed', got {kind!r}")


def holm_matrix(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values along the last axis (vectorised :func:`sequential.holm`)."""
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    sorted_p = np.take_along_axis(p, order, axis=-1)
    adj = np.minimum(1.0, np.maximum.accumulate(sorted_p * (m - np.arange(m)), axis=-1))
    out = np.empty_like(adj)
    np.put_along_axis(out, order, adj, axis=-1)
    return out


@dataclass
class Replay:
    """Per simulated job (axis 0) and candidate (axis 1): verdict code, stop code, seeds used, the
    reported interval and the final mean."""

    verdict: np.ndarray
    stop: np.ndarray
    seeds: np.ndarray
    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray
    by_linear: np.ndarray | None = None  # True where the linear arm settled "positive" (replay(..., linear=…))


def replay(deltas: np.ndarray, design: SequentialDesign, linear: np.ndarray | None = None) -> Replay:
    """Run the sequential rule over simulated Δ of shape ``(jobs, candidates, max_seeds)``; ``linear``
    (same shape): Δ_L = linear − scratch per seed, the evidence ``look(..., linear=…)`` may settle
    ``positive`` on (Holm over fine-tune and linear hypotheses together)."""
    x = np.asarray(deltas, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] < design.max_seeds:
        raise ValueError(f"deltas must have shape (jobs, candidates, >= {design.max_seeds}), got {x.shape}")
    x = x[:, :, :design.max_seeds]
    lin = None if linear is None else np.asarray(linear, dtype=np.float64)[:, :, :design.max_seeds]
    if lin is not None and lin.shape != x.shape:
        raise ValueError(f"linear must have the shape of deltas {x.shape}, got {lin.shape}")
    jobs, m, _ = x.shape
    alpha, delta = design.alpha, design.margin
    p_less = sequential_p(x, 0.0, "less", design)
    p_greater = sequential_p(x, 0.0, "greater", design)
    p_eq = np.maximum(sequential_p(x, -delta, "greater", design), sequential_p(x, delta, "less", design))
    low_all, high_all = design_interval(x, design, alpha / m)
    n_idx = np.arange(1, design.max_seeds + 1)
    means = np.cumsum(x, axis=-1) / n_idx
    sds = _running_sd(x)
    if lin is not None:
        p_lin = sequential_p(lin, 0.0, "greater", design)
        means_lin, sds_lin = np.cumsum(lin, axis=-1) / n_idx, _running_sd(lin)
    by_linear = np.zeros((jobs, m), dtype=bool)

    active = np.ones((jobs, m), dtype=bool)
    n_at = np.zeros((jobs, m), dtype=np.int64)
    stop = np.zeros((jobs, m), dtype=np.int64)
    verdict = np.zeros((jobs, m), dtype=np.int64)
    for n in design.schedule():
        n_at = np.where(active, n, n_at)
        pl, pe = holm_matrix(_at(p_less, n_at)), holm_matrix(_at(p_eq, n_at))
        if lin is None:
            pg = holm_matrix(_at(p_greater, n_at))
        else:
            both = holm_matrix(np.concatenate([_at(p_greater, n_at), _at(p_lin, n_at)], axis=-1))
            pg, pg_lin = both[:, :m], both[:, m:]
        mean, sd = _at(means, n_at), _at(sds, n_at)
        ok = (n_at >= design.min_seeds) & (sd > 0)
        v = np.zeros((jobs, m), dtype=np.int64)
        v = np.where(ok & (pe <= alpha), 3, v)
        v = np.where(ok & (pg <= alpha) & (mean > delta), 2, v)
        v = np.where(ok & (pl <= alpha) & (mean < -delta), 1, v)
        if lin is not None:
            sd_lin = _at(sds_lin, n_at)
            from_linear = ((v == 0) & (n_at >= design.min_seeds) & (sd_lin > 0) & (pg_lin <= alpha)
                           & (_at(means_lin, n_at) > delta) & ~(mean < -delta))
            v = np.where(from_linear, 2, v)
            by_linear = from_linear  # as look() reports it at this look, stopped candidates included
        verdict = v  # settled candidates keep their verdict: Holm is monotone, their own data are frozen
        newly = active & (v != 0)
        stop = np.where(newly, 1, stop)
        at_max = active & (v == 0) & (n_at >= design.max_seeds)
        stop = np.where(at_max, 2, stop)
        fut = active & (v == 0) & ~at_max & _futile_matrix(mean, sd, n_at, design)
        stop = np.where(fut, 3, stop)
        active = active & ~(newly | at_max | fut)
    return Replay(verdict, stop, n_at, _at(low_all, n_at), _at(high_all, n_at), _at(means, n_at),
                  by_linear if lin is not None else None)


def _at(values: np.ndarray, n_at: np.ndarray) -> np.ndarray:
    """``values[..., n − 1]`` per (job, candidate): the running statistic after that candidate's n seeds."""
    return np.take_along_axis(values, (n_at - 1)[..., None], axis=-1)[..., 0]


def _running_sd(x: np.ndarray) -> np.ndarray:
    n = np.arange(1, x.shape[-1] + 1, dtype=np.float64)
    z = x - x[..., :1]
    s1, s2 = np.cumsum(z, axis=-1), np.cumsum(z * z, axis=-1)
    v = np.maximum(s2 - s1 * s1 / n, 0.0)
    v = np.where(v <= 1e-12 * np.maximum(s2, 1e-300), 0.0, v)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 1, np.sqrt(v / np.maximum(n - 1, 1)), np.nan)


def _futile_matrix(mean: np.ndarray, sd: np.ndarray, n_at: np.ndarray, design: SequentialDesign) -> np.ndarray:
    if design.futility_ratio is None:
        return np.zeros(mean.shape, dtype=bool)
    h = projected_half_width(np.nan_to_num(sd), design)
    return (n_at >= design.futility_after) & (sd > 0) & (h > design.futility_ratio * np.maximum(np.abs(mean), design.margin))


def operating_characteristics(true_deltas: Any, sds: Any, design: SequentialDesign, *, noise: str = "normal",
                              jobs: int = 4000, seed: int = 0) -> dict[str, Any]:
    """Simulate ``jobs`` jobs whose candidates have paired Δ ~ true Δᵢ + sdᵢ·noise and summarise.

    Returns per candidate the verdict shares, mean seeds used, share stopped at ``max_seeds`` / futile,
    coverage of the reported interval (simultaneous level 1 − α); and per job the family-wise rates of a
    false ``negative_transfer`` (on a candidate with Δ ≥ 0), a false ``positive`` (Δ ≤ 0) and a false
    ``no_benefit`` (|Δ| ≥ δ), and the rate at which any interval misses its Δ.
    """
    mu = np.asarray(true_deltas, dtype=np.float64).ravel()
    sd = np.broadcast_to(np.asarray(sds, dtype=np.float64), mu.shape)
    if mu.size < 1 or np.any(sd < 0) or not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sd))):
        raise ValueError("need one finite true Δ and a finite SD >= 0 per candidate")
    if jobs < 100:
        raise ValueError(f"jobs must be >= 100 for a rate to mean anything, got {jobs!r}")
    rng = np.random.default_rng(seed)
    x = mu[None, :, None] + sd[None, :, None] * seed_noise(noise, (jobs, mu.size, design.max_seeds), rng)
    r = replay(x, design)
    share = {v.value: (r.verdict == i).mean(axis=0).tolist() for i, v in enumerate(VERDICT_CODES)}
    false_nt = (r.verdict == 1) & (mu[None, :] >= 0)
    false_pos = (r.verdict == 2) & (mu[None, :] <= 0)
    false_nb = (r.verdict == 3) & (np.abs(mu[None, :]) >= design.margin)
    covered = (r.low <= mu[None, :]) & (mu[None, :] <= r.high)
    return {
        "jobs": jobs, "noise": noise, "true_deltas": mu.tolist(), "sds": sd.tolist(),
        "verdict_share": share,
        "mean_seeds": r.seeds.mean(axis=0).tolist(),
        "share_max_seeds": (r.stop == 2).mean(axis=0).tolist(),
        "share_futile": (r.stop == 3).mean(axis=0).tolist(),
        "coverage": covered.mean(axis=0).tolist(),
        "fwer_false_negative_transfer": float(false_nt.any(axis=1).mean()),
        "fwer_false_positive": float(false_pos.any(axis=1).mean()),
        "fwer_false_no_benefit": float(false_nb.any(axis=1).mean()),
        "simultaneous_miss": float((~covered).any(axis=1).mean()),
    }
