"""Sequential paired seeds: an anytime-valid confidence sequence for Δ = finetune − scratch, Holm across
candidates, and the round-by-round decision settled / continue.

What lives here: the design (round schedule, caps, levels), its p-values and intervals, the decision
rule and the stopping rule. What does not: the confidence-sequence mathematics (``confseq``), training
(``runner``), the record of what was run (``record``), wording (``wording``), storage.

Why a confidence sequence and not a group-sequential boundary
--------------------------------------------------------------
A candidate gets paired seeds in rounds (``first_round``, then ``round_size`` more, up to ``max_seeds``)
and stops as soon as its verdict is settled; a user may later *extend* a finished verdict with more seeds
or a time budget may end it early. A group-sequential design (Lan–DeMets alpha spending) is valid only for
the look schedule it was planned with, and its Student-t version at n ≤ 20 is an approximation (the
canonical joint distribution is that of z statistics with known variance). An anytime-valid confidence
sequence holds at *every* n simultaneously, so any stopping or continuation rule — settled, max seeds,
time budget, a later extension — keeps its guarantee, with no schedule to pre-register.

Accuracy differences are bounded in [−1, 1], which would allow a betting (nonparametric) confidence
sequence, but the bound is ~50× the typical seed spread (SD of Δ 0.02–0.3 on the benchmark), so such a
sequence would not exclude 0 within 20 seeds. We use instead the scale-invariant Gaussian mixture
martingale of Lai (1976) as analysed by Wang & Ramdas (2023) — the "t confidence sequence" of
``confseq``. It needs no variance bound, is unbounded until n ≥ 4 at α = 0.05 (one or two seeds carry no
scale-free evidence, so too few seeds can never settle anything), and identical Δ in every seed give a
finite martingale, never a p-value of 0. Its mixing scale ``c`` sets where it is tightest; c = 0.5 is
tight from n ≈ 5 to 20 (half-width ≈ 4·s/√n at n = 10 vs 2.26·s/√n for a fixed-n t interval: the price of
anytime validity).

That price bites on the hardest cases, which run to ``max_seeds``; so the design spends a share w =
``final_test_share`` (default ½) of α on one fixed-n paired t-test on the first ``max_seeds`` seeds and
the rest on the sequence (weighted Bonferroni, :func:`sequential_p`): valid under any stopping, because
the t-test is done at one pre-set n. On the benchmark's hardest ground-truth negative pair (Δ = −8.7
points, SD 8.5, four candidates) this lifts the share found from 0.73 to 0.92 at 20 seeds, for about
half a seed on easy candidates (``python -m tests.probes.figures_sequential``). A later extension beyond
``max_seeds`` keeps both guarantees as long as ``final_test_seeds`` stays where it was.

Both parts are exact for Gaussian seed noise; the tests check by simulation that the claims keep their
level under heavy-tailed noise (t with 3 df) and moderately skewed noise (skewness ≈ 1: false
negative-transfer rate 0.049 for one null candidate). Stronger skew breaks them (skewness 1.75: 0.067;
3.3: 0.090), so the verdict record warns when the observed Δ are strongly skewed.

Decisions, with a practical margin δ (default 0.01 = 1 accuracy point)
----------------------------------------------------------------------
The design's p-values (the anytime-valid p of the sequence — the smallest α at which it has excluded the
null so far — combined with the final t-test as above) are Holm-adjusted across the candidates of one
job, per claim family:

``negative_transfer``  Holm p of H₀: Δ ≥ 0 ≤ α, and the current mean Δ < −δ
``positive``           Holm p of H₀: Δ ≤ 0 ≤ α, and the current mean Δ > δ
``no_benefit``         Holm p of H₀: |Δ| ≥ δ ≤ α (two one-sided tests at ±δ: the sequence lies in [−δ, δ])
``inconclusive``       otherwise; also when fewer than ``min_seeds`` pairs exist or Δ has zero spread

With linear evidence (``look(..., linear=…)``: Δ_L = linear − scratch, the frozen trunk with a trained head),
an otherwise inconclusive candidate whose fine-tune does not lean negative is ``positive`` once Holm p of
H₀: Δ_L ≤ 0 is ≤ α and mean Δ_L > δ (``decided_by = "linear"``); the positive family is then fine-tune and
linear hypotheses together (2·m), so its FWER stays ≤ α.

Significance is tested against 0, the practical size against δ on the estimate, so a deficit just past
−δ with a small spread (the benchmark's shapes_small ← vit_tiny.digits, Δ = −1.1 points) is found; a
significant deficit whose estimate is still within δ keeps sampling. Each family's FWER is ≤ α: false
``negative_transfer`` (a claim on a candidate with Δ ≥ 0), false ``positive`` (Δ ≤ 0) and false
``no_benefit`` (|Δ| ≥ δ), under any stopping. Holm needs only valid p-values, and an anytime-valid
p-value is valid at any stopping time. The reported interval is the sequence at level (1 − w)·α / m,
intersected at ``max_seeds`` with the t interval at w·α / m (Bonferroni over the m candidates), so the
intervals of one job cover their Δ simultaneously with probability ≥ 1 − α.

Stopping: a candidate stops as ``settled`` once its verdict is not ``inconclusive`` (Holm is monotone, so
a settled claim stays valid when others continue), as ``max_seeds``, as ``futile`` when even at
``max_seeds`` the observed spread could not settle it (the interval's half-width projected to
``max_seeds`` with the observed SD, :func:`projected_half_width`, above ``futility_ratio`` × max(|mean|, δ)), as ``time_budget`` when the caller says so, or as ``abandoned``
when successive halving (``halving``) drops it at a short budget. Stopping rules do
not touch the error control.

References: T. L. Lai, *On confidence sequences*, Ann. Statist. 4 (1976); H. Wang & A. Ramdas,
*Anytime-valid t-tests and confidence sequences for Gaussian means with unknown variance*,
arXiv:2310.03722 (2023, rev. 2024); S. Holm, *A simple sequentially rejective multiple test procedure*,
Scand. J. Statist. 6 (1979).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from app.enums import Verdict
from app.probes.confseq import (
    DEFAULT_MIXING,
    anytime_p,
    check_deltas,
    confidence_sequence,
    half_widths,
    holm,
    running_moments,
    t_test_p,
)

#: why a candidate stopped receiving seeds
STOP_REASONS = ("settled", "max_seeds", "futile", "time_budget", "abandoned")


@dataclass(frozen=True)
class SequentialDesign:
    """The sequential plan of one job: margin, level, rounds, caps.

    Round r (0-based) brings a candidate to ``seeds_after(r)`` paired seeds: ``first_round``, then
    ``round_size`` more per round, capped at ``max_seeds``. Seeds are numbered 0, 1, 2, … so a later
    extension continues where the job stopped.
    """

    margin: float = 0.01
    alpha: float = 0.05
    first_round: int = 6
    round_size: int = 3
    max_seeds: int = 20
    min_seeds: int = 3
    mixing: float = DEFAULT_MIXING
    futility_ratio: float | None = 1.5
    futility_after: int = 6
    final_test_share: float = 0.5
    final_test_seeds: int | None = None  # default: max_seeds; keep it when extending max_seeds later

    def __post_init__(self) -> None:
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(f"margin must be a finite number >= 0, got {self.margin!r}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha!r}")
        for name in ("first_round", "round_size", "max_seeds", "min_seeds", "futility_after"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.min_seeds < 2:
            raise ValueError(f"min_seeds must be >= 2 (one seed has no spread), got {self.min_seeds!r}")
        if self.first_round > self.max_seeds:
            raise ValueError(f"first_round ({self.first_round}) must not exceed max_seeds ({self.max_seeds})")
        if not (math.isfinite(self.mixing) and self.mixing > 0):
            raise ValueError(f"mixing must be a finite number > 0, got {self.mixing!r}")
        if self.futility_ratio is not None and not (math.isfinite(self.futility_ratio) and self.futility_ratio > 0):
            raise ValueError(f"futility_ratio must be > 0 or None, got {self.futility_ratio!r}")
        if not 0 <= self.final_test_share < 1:
            raise ValueError(f"final_test_share must be in [0, 1), got {self.final_test_share!r}")
        if self.final_test_seeds is not None and not (
                isinstance(self.final_test_seeds, (int, np.integer)) and self.final_test_seeds >= 2):
            raise ValueError(f"final_test_seeds must be an integer >= 2 or None, got {self.final_test_seeds!r}")

    @property
    def final_n(self) -> int:
        """The one n at which the fixed-n t-test is done (pre-set: an extension must not move it)."""
        return int(self.final_test_seeds or self.max_seeds)

    def seeds_after(self, round_index: int) -> int:
        """Cumulative paired seeds a continuing candidate has after round ``round_index`` (0-based)."""
        if round_index < 0:
            raise ValueError(f"round_index must be >= 0, got {round_index!r}")
        return min(self.max_seeds, self.first_round + self.round_size * round_index)

    def schedule(self) -> list[int]:
        """Cumulative seed counts of every round, e.g. ``[6, 9, 12, 15, 18, 20]``."""
        out, r = [], 0
        while not out or out[-1] < self.max_seeds:
            out.append(self.seeds_after(r))
            r += 1
        return out

    def rounds_for(self, n_seeds: int) -> int:
        """How many rounds brought a candidate to ``n_seeds`` seeds (so a job need not store it)."""
        if n_seeds < 0:
            raise ValueError(f"n_seeds must be >= 0, got {n_seeds!r}")
        if n_seeds == 0:
            return 0
        return next((i + 1 for i, t in enumerate(self.schedule()) if t >= n_seeds), len(self.schedule()))

    def next_seeds(self, done: Sequence[int] | int) -> list[int]:
        """The seeds of a candidate's next round, given the seeds it already has (or how many: 0..n−1)."""
        have = set(range(done)) if isinstance(done, (int, np.integer)) else {int(s) for s in done}
        n = len(have)
        if n >= self.max_seeds:
            return []
        target = next(t for t in self.schedule() if t > n)
        out, s = [], 0
        while len(out) < target - n:
            if s not in have:
                out.append(s)
            s += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "schedule": self.schedule()}


def sequential_p(deltas: Any, mu0: float, side: str, design: SequentialDesign) -> np.ndarray:
    """The design's one-sided p-values for n = 1 … N: the anytime-valid p of the confidence sequence,
    combined by weighted Bonferroni with a fixed-n paired t-test on the first ``max_seeds`` seeds
    (weight ``final_test_share``; the test exists only from n = ``final_n`` on).

    pₙ = min(1, p_csₙ / (1 − w), p_t / w once n ≥ max_seeds): valid at every stopping time because
    P(p_cs ≤ (1 − w)u) ≤ (1 − w)u at any stopping time and P(p_t ≤ wu) ≤ wu for the one fixed n.
    """
    x = check_deltas(deltas)
    w = design.final_test_share
    p = anytime_p(x, mu0, side, mixing=design.mixing)
    if w == 0:
        return p
    p = np.minimum(1.0, p / (1 - w))
    n_max = design.final_n
    if x.shape[-1] >= n_max:
        p_t = t_test_p(x[..., :n_max], mu0, side)
        p[..., n_max - 1:] = np.minimum(p[..., n_max - 1:], np.minimum(1.0, p_t / w)[..., None])
    return p


def design_interval(deltas: Any, design: SequentialDesign, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The reported interval for n = 1 … N at total miss probability ``level``: the confidence sequence at
    (1 − w)·level, intersected from n = ``final_n`` on with the fixed-n t interval at w·level."""
    x = check_deltas(deltas)
    w = design.final_test_share
    low, high = confidence_sequence(x, level=(1 - w) * level, mixing=design.mixing)
    n_max = design.final_n
    if w > 0 and x.shape[-1] >= n_max:
        head = x[..., :n_max]
        _, mean, spread = running_moments(head)
        half = stats.t.ppf(1 - w * level / 2, n_max - 1) * np.sqrt(spread[..., -1] / (n_max - 1) / n_max)
        t_low, t_high = (mean[..., -1] - half)[..., None], (mean[..., -1] + half)[..., None]
        new_low = np.maximum(low[..., n_max - 1:], t_low)
        new_high = np.minimum(high[..., n_max - 1:], t_high)
        empty = new_low > new_high  # only on a miss of one of the two: keep the sequence's interval
        low[..., n_max - 1:] = np.where(empty, low[..., n_max - 1:], new_low)
        high[..., n_max - 1:] = np.where(empty, high[..., n_max - 1:], new_high)
    return low, high


@dataclass(frozen=True)
class SequentialStats:
    """The evidence of one candidate after its latest look (Δ in seed order)."""

    seeds: tuple[int, ...]
    deltas: tuple[float, ...]
    mean: float | None
    sd: float | None
    cs_low: float | None  # the sequence at level α / m (simultaneous over the job's m candidates)
    cs_high: float | None
    p_less: float  # anytime p of H₀: Δ ≥ 0 (negative transfer's null)
    p_greater: float  # anytime p of H₀: Δ ≤ 0
    p_equivalence: float  # anytime p of H₀: |Δ| ≥ δ (max of the two one-sided tests at ±δ)

    @property
    def n(self) -> int:
        return len(self.deltas)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seeds": list(self.seeds), "deltas": list(self.deltas), "n": self.n}


@dataclass
class CandidateLook:
    """The decision for one candidate at one look: its verdict now and whether it gets more seeds."""

    backbone_id: str
    verdict: Verdict
    action: str  # "continue" or one of STOP_REASONS
    stats: SequentialStats
    p_holm: dict[str, float | None] = field(default_factory=dict)
    reason: str | None = None  # why inconclusive, in words
    next_seeds: list[int] = field(default_factory=list)
    decided_by: str | None = None  # "finetune" or "linear": whose evidence made the verdict (None: inconclusive)
    linear: SequentialStats | None = None  # linear − scratch, when the look was given it

    @property
    def settled(self) -> bool:
        return self.action != "continue"

    def to_dict(self) -> dict[str, Any]:
        return {"backbone_id": self.backbone_id, "verdict": self.verdict.value, "action": self.action,
                "stats": self.stats.to_dict(), "p_holm": dict(self.p_holm), "reason": self.reason,
                "next_seeds": list(self.next_seeds), "decided_by": self.decided_by,
                "linear": None if self.linear is None else self.linear.to_dict()}


def candidate_stats(paired: Mapping[int, float], design: SequentialDesign, n_candidates: int) -> SequentialStats:
    """The candidate's evidence from ``{seed: Δ}`` (seeds taken in increasing order)."""
    if n_candidates < 1:
        raise ValueError(f"n_candidates must be >= 1, got {n_candidates!r}")
    seeds = tuple(sorted(int(s) for s in paired))
    x = np.array([float(paired[s]) for s in seeds], dtype=np.float64)
    if x.size == 0:
        return SequentialStats((), (), None, None, None, None, 1.0, 1.0, 1.0)
    check_deltas(x)
    low, high = design_interval(x, design, design.alpha / n_candidates)
    p_less = float(sequential_p(x, 0.0, "less", design)[-1])
    p_greater = float(sequential_p(x, 0.0, "greater", design)[-1])
    p_eq = max(float(sequential_p(x, -design.margin, "greater", design)[-1]),
               float(sequential_p(x, design.margin, "less", design)[-1]))
    spread = float(running_moments(x)[2][-1])  # exactly 0 for identical Δ (x.std can leave 1e-18)
    sd = math.sqrt(spread / (x.size - 1)) if x.size > 1 else None
    finite = math.isfinite(low[-1]) and math.isfinite(high[-1])
    return SequentialStats(seeds, tuple(float(v) for v in x), float(x.mean()), sd,
                           float(low[-1]) if finite else None, float(high[-1]) if finite else None,
                           p_less, p_greater, p_eq)


def look(paired: Mapping[str, Mapping[int, float]], design: SequentialDesign, *,
         stopped: Mapping[str, str] | None = None,
         attempted: Mapping[str, Collection[int]] | None = None,
         family_size: int | None = None,
         linear: Mapping[str, Mapping[int, float]] | None = None) -> dict[str, CandidateLook]:
    """Decide every candidate of one job after a round.

    Parameters
    ----------
    paired : mapping backbone id → {seed: Δ}
        Δ = finetune − scratch per seed that counts as evidence (both arms finished; see
        ``app.probes.record.paired_evidence``). Every probed candidate of the job must be present, even
        with no seeds yet, because m (the Holm family) is the number of candidates.
    design : SequentialDesign
    stopped : mapping backbone id → stop reason, optional
        Candidates the caller has already stopped (e.g. ``"time_budget"``, or ``"settled"`` from an
        earlier look); they keep that reason and get no more seeds.
    attempted : mapping backbone id → seeds already run, optional
        Every seed run so far, including those that are not evidence (a timed-out arm): ``max_seeds``
        caps these, and ``next_seeds`` never repeats one. Defaults to the seeds in ``paired``.
    family_size : int, optional
        The number of hypotheses the job may test, when larger than the candidates here — e.g.
        candidates × rungs under successive halving, where each (candidate, budget) is its own Δ. Holm
        counts the untested ones as p = 1 and the intervals use level α / family_size.
    linear : mapping backbone id → {seed: Δ_L}, optional
        Δ_L = linear − scratch per seed (the frozen pretrained trunk with a trained head, against the same
        scratch runs). When given, a candidate whose fine-tune evidence is still inconclusive, and does not
        lean negative (mean Δ ≥ −δ), is ``positive`` once Holm p of H₀: Δ_L ≤ 0 is ≤ α and mean Δ_L > δ:
        the pretrained features alone already beat scratch (``decided_by="linear"``). The positive
        family then holds 2·m hypotheses (fine-tune and linear per candidate), so its FWER stays ≤ α;
        negative transfer and no benefit are only ever claimed on fine-tune evidence.

    Returns
    -------
    dict backbone id → CandidateLook
        ``action == "continue"`` with ``next_seeds`` for candidates that should get another round.
    """
    ids = list(paired)
    if not ids:
        raise ValueError("look() needs at least one candidate")
    stopped = dict(stopped or {})
    unknown = set(stopped) - set(ids)
    if unknown:
        raise ValueError(f"stopped names candidates that are not in paired: {sorted(unknown)!r}")
    bad = {k: v for k, v in stopped.items() if v not in STOP_REASONS}
    if bad:
        raise ValueError(f"stop reasons must be among {STOP_REASONS}, got {bad!r}")
    tried = {cid: {int(v) for v in (attempted or {}).get(cid, ())} | {int(v) for v in paired[cid]} for cid in ids}
    m = len(ids) if family_size is None else int(family_size)
    if m < len(ids):
        raise ValueError(f"family_size ({family_size}) must be at least the number of candidates ({len(ids)})")
    st = {cid: candidate_stats(paired[cid], design, m) for cid in ids}
    pad = [1.0] * (m - len(ids))
    adj = {name: dict(zip(ids, holm([getattr(st[c], f"p_{name}") for c in ids] + pad)[:len(ids)], strict=True))
           for name in ("less", "equivalence")}
    lin: dict[str, SequentialStats] = {}
    if linear is None:
        adj["greater"] = dict(zip(ids, holm([st[c].p_greater for c in ids] + pad)[:len(ids)], strict=True))
    else:
        missing = set(ids) - set(linear)
        if missing:
            raise ValueError(f"linear must name every candidate of paired; missing {sorted(missing)!r}")
        lin = {cid: candidate_stats(linear[cid], design, m) for cid in ids}
        both = holm([st[c].p_greater for c in ids] + pad + [lin[c].p_greater for c in ids] + pad)
        adj["greater"] = dict(zip(ids, both[:len(ids)], strict=True))
        adj["greater_linear"] = dict(zip(ids, both[m:m + len(ids)], strict=True))
    out: dict[str, CandidateLook] = {}
    for cid in ids:
        s = st[cid]
        p_holm = {"negative_transfer": adj["less"][cid], "positive": adj["greater"][cid],
                  "no_benefit": adj["equivalence"][cid]}
        verdict, reason = _decide(s, p_holm, design)
        decided_by = None if verdict is Verdict.inconclusive else "finetune"
        if linear is not None:
            p_holm["positive_linear"] = adj["greater_linear"][cid]
            if verdict is Verdict.inconclusive and _linear_positive(s, lin[cid], p_holm["positive_linear"], design):
                verdict, reason, decided_by = Verdict.positive, None, "linear"
        if cid in stopped:
            action = stopped[cid]
        elif verdict is not Verdict.inconclusive:
            action = "settled"
        elif len(tried[cid]) >= design.max_seeds:
            action = "max_seeds"
        elif _futile(s, design):
            action = "futile"
        else:
            action = "continue"
        if action == "futile":
            reason = (f"{reason}; the observed spread (SD {s.sd:.3g}) could not settle it even at "
                      f"{design.max_seeds} paired seeds")
        nxt = design.next_seeds(sorted(tried[cid])) if action == "continue" else []
        out[cid] = CandidateLook(cid, verdict, action, s, p_holm, reason, nxt, decided_by, lin.get(cid))
    return out


def _linear_positive(s: SequentialStats, lin: SequentialStats, p: float, design: SequentialDesign) -> bool:
    """The linear arm settles ``positive``: enough seeds with spread, Holm p ≤ α, mean Δ_L > δ — and the
    fine-tune evidence does not lean the other way (a fine-tune deficit is never hidden behind good features)."""
    if lin.n < design.min_seeds or not lin.sd or lin.mean is None:
        return False
    if s.mean is not None and s.mean < -design.margin:
        return False
    return p <= design.alpha and lin.mean > design.margin


def _decide(s: SequentialStats, p_holm: Mapping[str, float | None],
            design: SequentialDesign) -> tuple[Verdict, str | None]:
    if s.n < design.min_seeds:
        return Verdict.inconclusive, f"{s.n} paired seed(s); at least {design.min_seeds} are needed"
    if s.sd == 0:
        return Verdict.inconclusive, ("Δ is identical in every seed (zero spread): the arms did not vary, so "
                                      "the probe cannot tell an effect from its own noise")
    alpha, delta = design.alpha, design.margin
    if p_holm["negative_transfer"] <= alpha and s.mean < -delta:
        return Verdict.negative_transfer, None
    if p_holm["positive"] <= alpha and s.mean > delta:
        return Verdict.positive, None
    if p_holm["no_benefit"] <= alpha:
        return Verdict.no_benefit, None
    if p_holm["negative_transfer"] <= alpha:
        return Verdict.inconclusive, f"significantly below 0 but the estimate is within δ = {delta:g}"
    if p_holm["positive"] <= alpha:
        return Verdict.inconclusive, f"significantly above 0 but the estimate is within δ = {delta:g}"
    return Verdict.inconclusive, "the confidence sequence still spans more than one verdict"


def projected_half_width(sd: Any, design: SequentialDesign) -> np.ndarray:
    """The half-width the design's interval would have at ``max_seeds`` if the SD stayed ``sd`` (at the
    marginal level α: the futility rule's yardstick, generous on purpose)."""
    n, w = design.max_seeds, design.final_test_share
    sd = np.asarray(sd, dtype=np.float64)
    h = half_widths(n, (n - 1) * sd ** 2, (1 - w) * design.alpha, mixing=design.mixing)
    if w > 0 and design.final_n <= n:
        k = design.final_n
        h = np.minimum(h, stats.t.ppf(1 - w * design.alpha / 2, k - 1) * sd / math.sqrt(k))
    return h


def _futile(s: SequentialStats, design: SequentialDesign) -> bool:
    if design.futility_ratio is None or s.n < design.futility_after or not s.sd:
        return False
    h = float(projected_half_width(s.sd, design))
    return h > design.futility_ratio * max(abs(s.mean), design.margin)
