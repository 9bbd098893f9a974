"""The confidence sequence for a Gaussian mean with unknown variance, and anytime-valid p-values.

What lives here: the mathematics only — the scale-invariant Gaussian mixture martingale, its closed-form
confidence sequence, anytime-valid one-sided p-values, the fixed-n paired t-test the design spends part of
α on, and Holm's step-down. The design, the decisions and the stopping rule live in ``sequential``.

For the null mean μ₀, with yᵢ = Δᵢ − μ₀ over the first n seeds,

    Mₙ(μ₀) = √(c² / (n + c²)) · (1 − (Σyᵢ)² / ((n + c²) Σyᵢ²))^(−n/2),

the likelihood ratio of the scale-invariant part of the data (Wijsman's representation: right Haar
mixture over σ) mixed over the standardised effect θ = μ/σ ~ N(0, 1/c²) — the Gaussian-mixture variant of
Lai's (1976) construction analysed by Wang & Ramdas (2023). Under Δᵢ ~ N(μ₀, σ²) it is a test martingale
(in the scale-invariant filtration) with M₁ = 1, so by Ville's inequality P(∃n: Mₙ(μ₀) ≥ 1/α) ≤ α whatever
σ is: a time-uniform statement, hence valid at any stopping time. {μ₀ : Mₙ(μ₀) < 1/α} = x̄ₙ ± hₙ in closed
form (:func:`half_widths`).

References: T. L. Lai, *On confidence sequences*, Ann. Statist. 4 (1976); H. Wang & A. Ramdas,
*Anytime-valid t-tests and confidence sequences for Gaussian means with unknown variance*,
arXiv:2310.03722 (2023, rev. 2024); S. Holm, *A simple sequentially rejective multiple test procedure*,
Scand. J. Statist. 6 (1979).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

DEFAULT_MIXING = 0.5

def check_deltas(deltas: Any) -> np.ndarray:
    x = np.asarray(deltas, dtype=np.float64)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"need at least one paired difference on the last axis, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("paired differences must be finite (drop seeds without both arms first)")
    return x


def running_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(n, mean_n, V_n)`` along the last axis, V = Σ(xᵢ − x̄ₙ)², exact 0 for identical values."""
    n = np.arange(1, x.shape[-1] + 1, dtype=np.float64)
    z = x - x[..., :1]  # shift-invariant: identical values give exactly zero spread
    s1, s2 = np.cumsum(z, axis=-1), np.cumsum(z * z, axis=-1)
    mean = x[..., :1] + s1 / n
    spread = np.maximum(s2 - s1 * s1 / n, 0.0)
    spread = np.where(spread <= 1e-12 * np.maximum(s2, 1e-300), 0.0, spread)
    return n, mean, spread


def log_mixture(deltas: Any, mu0: float, *, mixing: float = DEFAULT_MIXING) -> np.ndarray:
    """log Mₙ(μ₀) for n = 1 … N along the last axis of ``deltas`` (shape preserved).

    Examples
    --------
    >>> np.round(np.exp(log_mixture([0.1, 0.3, 0.2, 0.25, 0.15], 0.0)), 2)
    array([ 1.  ,  1.15,  2.91,  9.42, 23.66])
    """
    x = check_deltas(deltas)
    n, mean, spread = running_moments(x)
    c2 = float(mixing) ** 2
    d = mean - float(mu0)
    total = spread + n * d * d  # Σ(xᵢ − μ₀)²
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(total > 0, n * n * d * d / ((n + c2) * total), 0.0)
    return 0.5 * np.log(c2 / (n + c2)) - 0.5 * n * np.log1p(-ratio)


def half_widths(n: np.ndarray | int, spread: np.ndarray | float, level: float, *,
                mixing: float = DEFAULT_MIXING) -> np.ndarray:
    """Half-width hₙ of {μ₀ : Mₙ(μ₀) < 1/level} = x̄ₙ ± hₙ (``inf`` where the set is unbounded).

    ``spread`` is V = Σ(xᵢ − x̄ₙ)² = (n − 1)·s². Solving Mₙ = 1/level for D = x̄ₙ − μ₀ gives
    D² (n² − q n (n + c²)) = q (n + c²) V with q = 1 − ((1/level)·√((n + c²)/c²))^(−2/n).
    """
    n = np.asarray(n, dtype=np.float64)
    spread = np.asarray(spread, dtype=np.float64)
    c2 = float(mixing) ** 2
    log_r = (2.0 / n) * (-math.log(level) + 0.5 * np.log((n + c2) / c2))
    q = -np.expm1(-log_r)
    den = n * n - q * n * (n + c2)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = np.sqrt(q * (n + c2) * spread / np.where(den > 0, den, 1.0))
    return np.where(den > 0, h, np.inf)


def confidence_sequence(deltas: Any, *, level: float, mixing: float = DEFAULT_MIXING,
                        running: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` for n = 1 … N along the last axis: P(∃n: Δ ∉ [lowₙ, highₙ]) ≤ ``level`` under
    Gaussian seed noise. ``running`` intersects over n (still valid, never wider); an intersection that
    comes out empty — possible only on a miscoverage event — falls back to the current interval."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    x = check_deltas(deltas)
    n, mean, spread = running_moments(x)
    h = half_widths(n, spread, level, mixing=mixing)
    low, high = mean - h, mean + h
    if running:
        rlow, rhigh = np.maximum.accumulate(low, axis=-1), np.minimum.accumulate(high, axis=-1)
        empty = rlow > rhigh
        low, high = np.where(empty, low, rlow), np.where(empty, high, rhigh)
    return low, high


def anytime_p(deltas: Any, mu0: float, side: str, *, mixing: float = DEFAULT_MIXING) -> np.ndarray:
    """Anytime-valid one-sided p-values for n = 1 … N (non-increasing in n).

    ``side="less"`` tests H₀: Δ ≥ μ₀ (evidence only from looks with x̄ₖ < μ₀), ``"greater"`` H₀: Δ ≤ μ₀.
    pₙ = min(1, min over k ≤ n of 1/Mₖ(μ₀)); P(p_τ ≤ u) ≤ u for every stopping time τ and u, because Mₖ
    grows with |x̄ₖ − μ| so the event implies Mₖ(Δ) ≥ 1/u, which Ville's inequality bounds.
    """
    if side not in ("less", "greater"):
        raise ValueError(f"side must be 'less' or 'greater', got {side!r}")
    x = check_deltas(deltas)
    _, mean, _ = running_moments(x)
    log_m = log_mixture(x, mu0, mixing=mixing)
    toward = mean < mu0 if side == "less" else mean > mu0
    log_p = np.where(toward, np.minimum(-log_m, 0.0), 0.0)
    return np.exp(np.minimum.accumulate(log_p, axis=-1))



def t_test_p(x: np.ndarray, mu0: float, side: str) -> np.ndarray:
    """One-sided paired t-test p-values over the last axis; 1 where the spread is zero (no evidence)."""
    n = x.shape[-1]
    _, mean, spread = running_moments(x)
    sd = np.sqrt(spread[..., -1] / (n - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (mean[..., -1] - mu0) / (sd / math.sqrt(n))
    p = stats.t.sf(t, n - 1) if side == "greater" else stats.t.cdf(t, n - 1)
    return np.where(sd > 0, p, 1.0)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni step-down adjusted p-values (``None`` stays ``None`` and is not counted)."""
    idx = [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(float(p))]
    m = len(idx)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda j: float(pvalues[j]))):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        adjusted[i] = running
    return adjusted


# -- one candidate's evidence, the family's decision ---------------------------------------------
