"""The negative-transfer verdict: paired seeds, a bootstrap CI, one-sided tests, Holm, a practical margin.

Per candidate and seed, Δ = metric(finetune) − metric(scratch): the same recipe with and without the
source's weights (Wang et al., *Characterizing and Avoiding Negative Transfer*, CVPR 2019). Every primary
probe metric is higher = better, so Δ < 0 is negative transfer. With a practical margin δ:

``negative_transfer``  the CI's upper bound < −δ
``positive``           the CI's lower bound > δ
``no_benefit``         the CI lies inside [−δ, δ] (an equivalence test in the TOST spirit)
``inconclusive``       otherwise — with the number of extra seeds the observed SD says would settle it

The CI is a percentile bootstrap of the mean Δ, widened for small samples by Hesterberg's *expanded
percentile* correction (2015), because the plain percentile interval undercovers at n = 5. One-sided
Wilcoxon signed-rank and paired t-tests (scipy) give p-values, Holm-adjusted across the candidates of
one job. Short probe budgets favour pretrained weights (He, Girshick, Dollár, *Rethinking ImageNet
Pre-training*, ICCV 2019), so the text flags a small positive Δ as weak evidence and calls a negative Δ
strong evidence.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from app.enums import Verdict
from app.probes.paired import PairedStats
from app.probes.wording import describe

__all__ = ["PairedStats", "VerdictResult", "bootstrap_mean_ci", "decide", "extra_seeds_needed", "holm",
           "judge", "one_sided_tests", "paired_deltas", "paired_stats", "side_comparisons"]

MAX_SUGGESTED_SEEDS = 100


@dataclass
class VerdictResult:
    """One candidate's verdict — maps onto a ``verdicts`` row."""

    backbone_id: str
    verdict: str
    delta_mean: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n_seeds: int
    text: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_deltas(a: Mapping[int, float], b: Mapping[int, float]) -> tuple[tuple[int, ...], np.ndarray]:
    """Seeds present (with a finite metric) in both arms, sorted, and their differences a − b."""
    seeds = tuple(sorted(s for s in a if s in b and _finite(a[s]) and _finite(b[s])))
    return seeds, np.array([float(a[s]) - float(b[s]) for s in seeds], dtype=np.float64)


def bootstrap_mean_ci(deltas: Sequence[float], *, confidence: float = 0.95, n_resamples: int = 10_000,
                      seed: int = 0, expanded: bool = True) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean, seeded; ``expanded`` applies Hesterberg's small-n correction
    (percentiles at Φ(−√(n/(n−1))·t_{n−1, 1−α/2}) instead of α/2)."""
    x = np.asarray(deltas, dtype=np.float64)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"need at least 2 paired differences, got {x.size}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if n_resamples < 100:
        raise ValueError(f"n_resamples must be >= 100, got {n_resamples!r}")
    n = x.size
    tail = (1 - confidence) / 2
    if expanded:
        tail = float(stats.norm.cdf(-math.sqrt(n / (n - 1)) * stats.t.ppf(1 - tail, n - 1)))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(n_resamples, n))].mean(axis=1)
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def one_sided_tests(deltas: Sequence[float]) -> tuple[dict[str, float], dict[str, float]]:
    """``(p_less, p_greater)``: one-sided Wilcoxon signed-rank and paired t-test p-values per direction."""
    x = np.asarray(deltas, dtype=np.float64)
    p_less, p_greater = {}, {}
    if np.all(x == 0):  # no evidence in either direction
        return {"wilcoxon": 1.0, "t": 1.0}, {"wilcoxon": 1.0, "t": 1.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on ties and small n; the p-values stay valid
        for name, alt in (("less", p_less), ("greater", p_greater)):
            alt["wilcoxon"] = float(stats.wilcoxon(x, alternative=name).pvalue)
            if np.std(x) == 0:  # all Δ equal and non-zero: no spread, so no evidence either way (never p = 0)
                alt["t"] = 1.0
            else:
                alt["t"] = float(stats.ttest_1samp(x, 0.0, alternative=name).pvalue)
    return p_less, p_greater


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni step-down adjusted p-values (``None`` stays ``None`` and is not counted)."""
    idx = [i for i, p in enumerate(pvalues) if p is not None and _finite(p)]
    m = len(idx)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda j: pvalues[j])):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        adjusted[i] = running
    return adjusted


def paired_stats(a: Mapping[int, float], b: Mapping[int, float], *, confidence: float = 0.95,
                 n_resamples: int = 10_000, seed: int = 0) -> PairedStats | None:
    """Statistics of Δ = a − b; ``None`` when fewer than two seeds are paired."""
    seeds, x = paired_deltas(a, b)
    if x.size < 2:
        return None
    low, high = bootstrap_mean_ci(x, confidence=confidence, n_resamples=n_resamples, seed=seed)
    p_less, p_greater = one_sided_tests(x)
    return PairedStats(seeds, tuple(float(v) for v in x), float(x.mean()), float(x.std(ddof=1)),
                       low, high, p_less, p_greater)


def decide(ci_low: float, ci_high: float, margin: float) -> Verdict:
    if ci_high < -margin:
        return Verdict.negative_transfer
    if ci_low > margin:
        return Verdict.positive
    if -margin <= ci_low and ci_high <= margin:
        return Verdict.no_benefit
    return Verdict.inconclusive


def extra_seeds_needed(mean: float, sd: float, n: int, margin: float, *, confidence: float = 0.95) -> int:
    """Extra paired seeds after which a CI of the observed width would clear the nearest decision
    boundary (±δ), if the mean and SD held; capped at ``MAX_SUGGESTED_SEEDS``."""
    room = abs(abs(mean) - margin)
    if sd == 0:
        return 0
    for total in range(max(n, 2), MAX_SUGGESTED_SEEDS + n + 1):
        if stats.t.ppf(1 - (1 - confidence) / 2, total - 1) * sd / math.sqrt(total) < room:
            return total - n
    return MAX_SUGGESTED_SEEDS


def judge(candidates: Mapping[str, Any], *, margin: float = 0.01, alpha: float = 0.05, confidence: float = 0.95,
          n_resamples: int = 10_000, seed: int = 0, test: str = "wilcoxon", min_seeds: int = 5,
          small_gain: float = 3.0, metric_name: str | None = None,
          budget_steps: Mapping[str, int] | None = None) -> list[VerdictResult]:
    """Verdicts for all probed candidates of one job (Holm runs across them).

    ``candidates``: backbone id → a ``ProbeResult`` or a mapping arm → {seed: metric}. ``small_gain``: a
    positive mean Δ up to ``small_gain × δ`` gets the He et al. note. ``min_seeds``: fewer paired seeds
    than this make the verdict inconclusive whatever the CI says.
    """
    if test not in ("wilcoxon", "t"):
        raise ValueError(f"test must be 'wilcoxon' or 't', got {test!r}")
    if margin < 0 or not 0 < alpha < 1:
        raise ValueError(f"need margin >= 0 and 0 < alpha < 1, got margin={margin!r}, alpha={alpha!r}")
    ids = list(candidates)
    arms = {cid: _by_arm(candidates[cid]) for cid in ids}
    metric = metric_name or next((getattr(candidates[c], "metric_name", None) for c in ids
                                  if getattr(candidates[c], "metric_name", None)), "accuracy")
    steps = dict(budget_steps or {})
    for cid in ids:
        if cid not in steps and getattr(candidates[cid], "budget_steps", None):
            steps[cid] = candidates[cid].budget_steps
    st = {cid: paired_stats(arms[cid].get("finetune", {}), arms[cid].get("scratch", {}), confidence=confidence,
                            n_resamples=n_resamples, seed=seed) for cid in ids}
    adjusted = {}
    for direction in ("less", "greater"):
        for name in ("wilcoxon", "t"):
            raw = [getattr(st[c], f"p_{direction}")[name] if st[c] else None for c in ids]
            adjusted[(direction, name)] = dict(zip(ids, holm(raw), strict=True))

    out = []
    for cid in ids:
        s = st[cid]
        if s is None:
            n = len(paired_deltas(arms[cid].get("finetune", {}), arms[cid].get("scratch", {}))[0])
            out.append(VerdictResult(cid, Verdict.inconclusive.value, None, None, None, None, n,
                                     describe(cid, Verdict.inconclusive, None, margin=margin, metric=metric,
                                              extra=max(min_seeds - n, 2), p=None, p_adj=None, test=test,
                                              alpha=alpha, small_gain=small_gain, steps=steps.get(cid),
                                              n_candidates=len(ids)),
                                     {"margin": margin, "metric_name": metric, "reason": "fewer than 2 paired seeds"}))
            continue
        verdict = decide(s.ci_low, s.ci_high, margin)
        if verdict is not Verdict.inconclusive and (s.n < min_seeds or s.sd == 0):
            verdict = Verdict.inconclusive  # too few seeds, or zero spread: a CI of width 0 is no evidence
        extra = None
        if verdict is Verdict.inconclusive:
            extra = max(extra_seeds_needed(s.mean, s.sd, s.n, margin, confidence=confidence), min_seeds - s.n, 1)
            if s.sd == 0:
                extra = max(extra, min_seeds - s.n, 2)
        direction = "less" if verdict is Verdict.negative_transfer or (
            verdict is not Verdict.positive and s.mean < 0) else "greater"
        p_raw = getattr(s, f"p_{direction}")[test]
        p_adj = adjusted[(direction, test)][cid]
        details = {
            "margin": margin, "alpha": alpha, "confidence": confidence, "test": test, "direction": direction,
            "metric_name": metric, "n_candidates": len(ids), "budget_steps": steps.get(cid),
            "significant": bool(p_adj is not None and p_adj < alpha), "p_raw": p_raw,
            "p_holm": {f"{d}_{t}": adjusted[(d, t)][cid] for d, t in adjusted},
            "finetune_minus_scratch": s.to_dict(), "suggested_extra_seeds": extra,
            "reason": "zero spread: Δ identical in every seed" if s.sd == 0 else None,
            **side_comparisons(arms[cid], confidence=confidence, n_resamples=n_resamples, seed=seed, margin=margin),
        }
        text = describe(cid, verdict, s, margin=margin, metric=metric, extra=extra, p=p_raw, p_adj=p_adj,
                        test=test, alpha=alpha, small_gain=small_gain, steps=steps.get(cid), n_candidates=len(ids))
        out.append(VerdictResult(cid, verdict.value, s.mean, s.ci_low, s.ci_high, p_adj, s.n, text, details))
    return out


def side_comparisons(arms: Mapping[str, Mapping[int, float]], *, confidence: float, n_resamples: int,
                     seed: int, margin: float) -> dict[str, Any]:
    """Secondary paired comparisons stored beside the verdict: what frozen features alone achieve
    against scratch, and the candidate against the reference backbone (relative negative transfer)."""
    out: dict[str, Any] = {}
    for a, b in (("linear", "scratch"), ("finetune", "reference")):
        if a in arms and b in arms:
            s = paired_stats(arms[a], arms[b], confidence=confidence, n_resamples=n_resamples, seed=seed)
            if s is not None:
                out[f"{a}_minus_{b}"] = {**s.to_dict(), "verdict": decide(s.ci_low, s.ci_high, margin).value}
    return out


def _by_arm(candidate: Any) -> dict[str, dict[int, float]]:
    if hasattr(candidate, "by_arm"):
        return candidate.by_arm()
    if not isinstance(candidate, Mapping):
        raise ValueError(f"a candidate must be a ProbeResult or a mapping arm -> {{seed: metric}}, got {candidate!r}")
    return {str(arm): {int(s): float(v) for s, v in seeds.items() if v is not None} for arm, seeds in candidate.items()}


def _finite(v: Any) -> bool:
    return v is not None and math.isfinite(float(v))
