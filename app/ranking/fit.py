"""Fitting the default ranking from benchmark ground truth, leave-one-target-out, and storing it as data.

What lives here (pure numpy: no scipy, torch, web, database or executor imports):

* the ranking-quality measures the fit optimises and reports — :func:`weighted_tau` (Vigna's weighted
  Kendall τ with hyperbolic weights, the statistic of ``scipy.stats.weightedtau`` with its defaults),
  :func:`rank_quality` (τ_w, Pearson, top-1 / top-3 hit of the truly best source);
* the aggregation family: per target and metric, sources' **normalised ranks** in [0, 1] (ties averaged,
  a missing value counts 0.5), combined with **non-negative weights** that sum to 1 (:func:`combine`);
* the **layer rules** that pick one tap per source (``last``, ``best``: the tap with the best combined
  score, ``best_deep``: the same among the deeper half of the taps) and their check against cut-point truth
  (:func:`layer_rule_quality`);
* the fit: forward stagewise selection of weights on the training targets (:func:`fit_weights`), the
  layer rule chosen on the training targets' cut-point truth (:func:`fit_layer_rule`), the
  leave-one-target-out loop (:func:`leave_one_target_out`), and :func:`fit_default`, whose result
  (:class:`FittedDefault`) is written to / read from a versioned JSON (:func:`write_default`,
  :func:`load_default`; the committed files live in ``app/ranking/defaults/``).

What must not live here: computing metric scores (``app.transferability``), the rank stage of the job
(``app.services``), benchmark I/O (``bench.transfer``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.ranking.aggregate import COMBINATIONS, MISSING_RANK, family_normalise, normalised_ranks

__all__ = ["COMBINATIONS", "MISSING_RANK", "normalised_ranks"]  # re-exported: the fit's family lives in aggregate

#: format 1: rank family only; format 2 adds ``combination``
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
NORMALISATIONS = {
    "rank": f"per target: normalised rank in [0, 1] of each metric's oriented value, ties averaged, missing = "
            f"{MISSING_RANK}; score = weighted sum",
    "zscore": "per target: z-score of each metric's oriented value over the candidates (population sd), clipped "
              "to ±3, missing = 0; score = weighted sum",
}
DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"
LAYER_RULES = ("last", "best", "best_deep")
_FILE_RE = re.compile(r"^(?P<task>[a-z_]+)-v(?P<version>\d+)\.json$")

Key3 = tuple[str, str, str]  # (target, source, layer)
Key2 = tuple[str, str]  # (target, source)


# -- ranking quality ------------------------------------------------------------------------------------------
def _check_pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"need two 1-d arrays of the same length, got shapes {x.shape} and {y.shape}")
    if len(x) < 2:
        raise ValueError(f"need at least 2 items to rank, got {len(x)}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("values must be finite (impute missing scores before ranking)")
    return x, y


def _weighted_tau_ranked(x: np.ndarray, y: np.ndarray) -> float:
    """τ_w with the importance rank taken from decreasing (x, then y); hyperbolic additive weights."""
    n = len(x)
    order = np.lexsort((-y, -x))
    rank = np.empty(n)
    rank[order] = np.arange(n)
    w = 1.0 / (rank + 1.0)
    wij = w[:, None] + w[None, :]
    sx = np.sign(x[:, None] - x[None, :])
    sy = np.sign(y[:, None] - y[None, :])
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    num = float(np.sum((wij * sx * sy)[upper]))
    dx = float(np.sum((wij * (sx != 0))[upper]))
    dy = float(np.sum((wij * (sy != 0))[upper]))
    if dx == 0 or dy == 0:
        return float("nan")
    return num / math.sqrt(dx * dy)


def weighted_tau(x: Any, y: Any) -> float:
    """Weighted Kendall τ (Vigna 2015) with hyperbolic weights ``1 / (r + 1)`` on the importance rank,
    averaged over ranking by ``x`` and by ``y`` — the value ``scipy.stats.weightedtau(x, y)`` returns.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Finite scores of the same items; higher ranks first.

    Returns
    -------
    float
        In [-1, 1]; NaN when one side is constant.
    """
    x, y = _check_pair(x, y)
    return 0.5 * (_weighted_tau_ranked(x, y) + _weighted_tau_ranked(y, x))


def rank_quality(pred: Mapping[str, float], truth: Mapping[str, float]) -> dict[str, float]:
    """How well ``pred`` ranks the items of ``truth``: ``tau`` (weighted τ), ``pearson``, ``top1`` (is a
    truly best item ranked first?) and ``top3`` (is one among the first three?).

    A constant prediction scores τ = r = 0 (it says nothing) and, for the hit rates, ties are broken by the
    item name, so a constant ranker earns no luck from the order of the input.

    Parameters
    ----------
    pred : mapping item -> score
        Must cover every item of ``truth``, with finite scores.
    truth : mapping item -> measured value (e.g. fine-tune accuracy)
    """
    items = sorted(truth)
    missing = [s for s in items if s not in pred]
    if missing:
        raise ValueError(f"prediction misses {len(missing)} item(s) of the truth, e.g. {missing[:3]}")
    p, t = _check_pair([pred[s] for s in items], [truth[s] for s in items])
    tau = weighted_tau(p, t) if np.ptp(p) > 0 and np.ptp(t) > 0 else 0.0
    if np.ptp(p) > 0 and np.ptp(t) > 0:
        r = float(np.corrcoef(p, t)[0, 1])
    else:
        r = 0.0
    best = set(np.flatnonzero(t == t.max()).tolist())
    order = sorted(range(len(items)), key=lambda i: (-p[i], items[i]))
    return {"tau": float(tau), "pearson": r, "top1": float(order[0] in best),
            "top3": float(bool(best & set(order[:3])))}


# -- the aggregation family -----------------------------------------------------------------------------------
def _check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    if not weights:
        raise ValueError("weights must name at least one metric")
    bad = {m: w for m, w in weights.items() if not (isinstance(w, int | float) and math.isfinite(w) and w >= 0)}
    if bad:
        raise ValueError(f"weights must be finite and non-negative, got {bad}")
    total = float(sum(weights.values()))
    if total <= 0:
        raise ValueError("weights must have a positive sum")
    return {m: float(w) / total for m, w in weights.items() if w > 0}


def combine(rows: Mapping[Any, Mapping[str, float]], weights: Mapping[str, float],
            directions: Mapping[str, bool], combination: str = "rank") -> dict[Any, float]:
    """The combined score of each row: Σ_m w_m · normalised value of the row's (oriented) value of m among
    ``rows`` — its normalised rank (``combination="rank"``) or its clipped z-score (``"zscore"``; see
    ``app.ranking.aggregate``). ``directions[m]`` is True when higher is better.

    Parameters
    ----------
    rows : mapping row key -> {metric: raw value}
        The items competing on one target (sources, or (source, layer) pairs). A metric a row lacks, or a
        non-finite value, counts as rank :data:`MISSING_RANK`.
    weights : mapping metric -> non-negative weight (normalised to sum 1 here)
    directions : mapping metric -> higher is better
    """
    w = _check_weights(weights)
    missing = [m for m in w if m not in directions]
    if missing:
        raise ValueError(f"no direction for metric(s) {missing}")
    keys = list(rows)
    if not keys:
        raise ValueError("no rows to combine")
    total = np.zeros(len(keys))
    for m, wm in w.items():
        total += wm * _normalised_column([rows[k] for k in keys], m, directions[m], combination)
    return dict(zip(keys, total.tolist(), strict=True))


def _normalised_column(rows: Sequence[Mapping[str, float]], metric: str, higher_is_better: bool,
                       combination: str) -> np.ndarray:
    """One metric over ``rows``, oriented (higher = better) and normalised by the family."""
    sign = 1.0 if higher_is_better else -1.0
    return family_normalise(np.array([sign * float(r.get(metric, np.nan)) for r in rows], dtype=np.float64),
                            combination)


def allowed_taps(taps: Sequence[str], rule: str) -> list[str]:
    """The taps of one source (depth order) that compete under a layer rule."""
    if rule not in LAYER_RULES:
        raise ValueError(f"unknown layer rule {rule!r}; known: {LAYER_RULES}")
    if not taps:
        raise ValueError("a source has no taps")
    return [taps[-1]] if rule == "last" else list(taps) if rule == "best" else list(taps[len(taps) // 2:])


def _best_per_source(keys: Sequence[tuple[str, str]], values: Sequence[float]) -> dict[str, tuple[str, float]]:
    """``{source: (layer, value)}`` of each source's best (source, layer) row; ties keep the deeper tap
    (rows come in depth order)."""
    out: dict[str, tuple[str, float]] = {}
    for (src, ly), value in zip(keys, values, strict=True):
        if src not in out or value >= out[src][1]:
            out[src] = (ly, value)
    return out


def choose_layers(scores: Mapping[tuple[str, str], Mapping[str, float]], layers: Mapping[str, Sequence[str]],
                  weights: Mapping[str, float], directions: Mapping[str, bool], rule: str,
                  combination: str = "rank") -> dict[str, tuple[str, float]]:
    """``{source: (chosen layer, its combined score)}`` on one target.

    Parameters
    ----------
    scores : mapping (source, layer) -> {metric: raw value}
    layers : mapping source -> its taps in depth order (the last is the backbone's last layer)
    rule : one of :data:`LAYER_RULES`
        ``last``: the last tap, scores normalised among the sources' last taps; ``best``: every
        (source, tap) competes in one pool and each source keeps its best tap; ``best_deep``: the same
        among the deeper half of each source's taps.
    """
    if rule not in LAYER_RULES:
        raise ValueError(f"unknown layer rule {rule!r}; known: {LAYER_RULES}")
    if not layers:
        raise ValueError("no sources")
    pool: dict[tuple[str, str], Mapping[str, float]] = {}
    for src, taps in layers.items():
        for ly in allowed_taps(taps, rule):
            if (src, ly) not in scores:
                raise ValueError(f"no scores for source {src} at layer {ly}")
            pool[(src, ly)] = scores[(src, ly)]
    combined = combine(pool, weights, directions, combination)
    return _best_per_source(list(combined), list(combined.values()))


# -- the data the fit reads -----------------------------------------------------------------------------------
@dataclass
class Benchmark:
    """Metric scores and ground truth of several targets, as the fit reads them.

    Attributes
    ----------
    scores : {(target, source, layer): {metric: raw value}}
    directions : {metric: higher is better}
    layers : {source: taps in depth order}
    truth : {(target, source): fine-tune accuracy at the last layer}
    cut_truth : {(target, source, layer): fine-tune accuracy of the trunk cut at that tap}
    label_free : metrics that do not read the target's labels (ETran's energy: how strongly a backbone
        responds to the images, not whether its features separate the classes); the fit lets them carry
        at most :data:`LABEL_FREE_SHARES`'s largest share of the weight (:func:`fit_label_free_share`)
    """

    scores: Mapping[Key3, Mapping[str, float]]
    directions: Mapping[str, bool]
    layers: Mapping[str, Sequence[str]]
    truth: Mapping[Key2, float]
    cut_truth: Mapping[Key3, float] = field(default_factory=dict)
    label_free: frozenset[str] = frozenset()
    #: normalised columns already computed, by (target, rule, family, metric): the fit scores thousands of
    #: weightings of the same columns. ``scores`` must not change once a fit has read them.
    _columns: dict[tuple[str, str, str, str], np.ndarray] = field(default_factory=dict, init=False, repr=False,
                                                                  compare=False)
    _pools: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict, init=False, repr=False,
                                                                 compare=False)

    def __post_init__(self) -> None:
        if not self.truth:
            raise ValueError("the benchmark holds no ground truth")
        for (tgt, src), v in self.truth.items():
            if src not in self.layers:
                raise ValueError(f"truth names source {src} that has no taps")
            if not math.isfinite(float(v)):
                raise ValueError(f"truth for ({tgt}, {src}) is not finite: {v!r}")
            if (tgt, src, self.layers[src][-1]) not in self.scores:
                raise ValueError(f"no metric scores for ({tgt}, {src}) at its last layer {self.layers[src][-1]}")

    @property
    def targets(self) -> list[str]:
        return sorted({t for t, _ in self.truth})

    @property
    def cut_targets(self) -> list[str]:
        return sorted({t for t, _, _ in self.cut_truth})

    @property
    def metrics(self) -> list[str]:
        return sorted({m for vals in self.scores.values() for m in vals} & set(self.directions))

    def sources(self, target: str) -> list[str]:
        return sorted(s for t, s in self.truth if t == target)

    def target_scores(self, target: str) -> dict[tuple[str, str], Mapping[str, float]]:
        return {(s, ly): v for (t, s, ly), v in self.scores.items() if t == target}

    def target_layers(self, target: str) -> dict[str, Sequence[str]]:
        return {s: self.layers[s] for s in self.sources(target)}

    def pool(self, target: str, rule: str) -> list[tuple[str, str]]:
        """The (source, tap) rows competing on ``target`` under a layer rule, in :func:`choose_layers`'s order."""
        key = (target, rule)
        if key not in self._pools:
            rows = []
            for src in self.sources(target):
                for ly in allowed_taps(self.layers[src], rule):
                    if (target, src, ly) not in self.scores:
                        raise ValueError(f"no scores for source {src} at layer {ly}")
                    rows.append((src, ly))
            self._pools[key] = rows
        return self._pools[key]

    def column(self, target: str, rule: str, combination: str, metric: str) -> np.ndarray:
        """One metric's oriented, family-normalised values over :meth:`pool` — what :func:`combine` computes
        for it — computed once."""
        key = (target, rule, combination, metric)
        if key not in self._columns:
            rows = [self.scores[(target, s, ly)] for s, ly in self.pool(target, rule)]
            self._columns[key] = _normalised_column(rows, metric, self.directions[metric], combination)
        return self._columns[key]


def predict(bench: Benchmark, target: str, weights: Mapping[str, float], rule: str = "last",
            combination: str = "rank") -> dict[str, tuple[str, float]]:
    """``{source: (layer, score)}`` of the aggregation on one target of ``bench``: :func:`choose_layers` on
    the target's scores, from the benchmark's cached normalised columns (the same arithmetic, in the same
    order, so the same values)."""
    w = _check_weights(weights)
    missing = [m for m in w if m not in bench.directions]
    if missing:
        raise ValueError(f"no direction for metric(s) {missing}")
    keys = bench.pool(target, rule)
    total = np.zeros(len(keys))
    for m, wm in w.items():
        total += wm * bench.column(target, rule, combination, m)
    return _best_per_source(keys, total.tolist())


def target_quality(bench: Benchmark, target: str, weights: Mapping[str, float], rule: str = "last",
                   combination: str = "rank") -> dict[str, float]:
    pred = predict(bench, target, weights, rule, combination)
    truth = {s: float(bench.truth[(target, s)]) for s in bench.sources(target)}
    return rank_quality({s: v for s, (_, v) in pred.items()}, truth)


# -- the fit ------------------------------------------------------------------------------------------------
WEIGHT_METHODS = ("stagewise", "nnls")
#: the fit recipes the inner loop chooses among: (combination family, weight method)
RECIPES = tuple((c, m) for c in COMBINATIONS for m in WEIGHT_METHODS)
RIDGE = 1.0  # nnls: one pseudo-observation per weight, pulling it to 0 (the values are standardised per target)
#: nnls: a metric whose share of the fitted weight is below this is dropped (the rest renormalised): in the
#: z-score family (clipped at ±3) it moves a candidate's score by at most 0.3, yet every job would compute it
MIN_WEIGHT = 0.05
#: the shares of the weight a label-free metric may take, the first being none. A label-free metric (it
#: never reads the target's labels) may correct the order the label-aware metrics give, never lead it: at
#: a share below 1/3, in the rank family, it cannot reverse the first two of three candidates on which the
#: label-aware metrics agree (their normalised ranks 1, 0.5, 0 against at most one rank's swing).
LABEL_FREE_SHARES = (0.0, 0.125, 0.25)


def nnls(a: np.ndarray, b: np.ndarray, max_iter: int | None = None) -> np.ndarray:
    """Non-negative least squares, min ‖a x − b‖ subject to x ≥ 0 (Lawson & Hanson 1974, the active-set
    algorithm ``scipy.optimize.nnls`` implements). Pure numpy; raises when it does not converge."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.shape != (a.shape[0],):
        raise ValueError(f"need a (m, n) matrix and an (m,) vector, got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("nnls inputs must be finite")
    n = a.shape[1]
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    tol = 10 * np.finfo(float).eps * np.linalg.norm(a, 1) * max(a.shape)
    limit = max_iter if max_iter is not None else 3 * n + 30
    for _ in range(limit):
        w = a.T @ (b - a @ x)
        if passive.all() or np.max(np.where(passive, -np.inf, w)) <= tol:
            return x
        passive[int(np.argmax(np.where(passive, -np.inf, w)))] = True
        for _inner in range(limit):
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if np.all(z[passive] > tol):
                x = z
                break
            neg = passive & (z <= tol)
            alpha = np.min(x[neg] / np.maximum(x[neg] - z[neg], 1e-300))
            x = x + alpha * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
        else:
            raise RuntimeError("nnls: the inner loop did not converge")
    raise RuntimeError(f"nnls did not converge in {limit} iterations")


def _standardised(values: Sequence[float], combination: str) -> np.ndarray:
    """A per-target column on the family's scale, centred: ranks − 0.5, or z-scores."""
    col = family_normalise(values, combination)
    return col - MISSING_RANK if combination == "rank" else col


def fit_weights_nnls(bench: Benchmark, targets: Sequence[str], candidates: Sequence[str], *,
                     combination: str = "rank", ridge: float = RIDGE) -> dict[str, float]:
    """Weights by pooled non-negative ridge regression: every training target's sources (at their last
    layer) are rows, the family-normalised metric values the columns, the family-normalised truth the
    response; ``ridge`` pseudo-observations per weight shrink it to 0. Uses every pair of every target at
    once (the stagewise fit sees one τ per target). A share below :data:`MIN_WEIGHT` is dropped (never the
    largest). Normalised to sum 1; no weight at all (every metric useless on the training targets) falls
    back to the best single metric by mean τ."""
    if not targets:
        raise ValueError("fit_weights needs at least one training target")
    if ridge < 0 or not math.isfinite(ridge):
        raise ValueError(f"ridge must be finite and >= 0, got {ridge}")
    cands = sorted(candidates)
    rows, ys = [], []
    for t in targets:
        srcs = bench.sources(t)
        cols = []
        for m in cands:
            sign = 1.0 if bench.directions[m] else -1.0
            cols.append(_standardised([sign * float(bench.scores[(t, s, bench.layers[s][-1])].get(m, np.nan))
                                       for s in srcs], combination))
        rows.append(np.array(cols).T)
        ys.append(_standardised([bench.truth[(t, s)] for s in srcs], combination))
    x, y = np.vstack(rows), np.concatenate(ys)
    if ridge:
        x = np.vstack([x, math.sqrt(ridge) * np.eye(len(cands))])
        y = np.concatenate([y, np.zeros(len(cands))])
    w = nnls(x, y)
    w[(w < MIN_WEIGHT * w.sum()) & (w < w.max())] = 0.0  # too small to move a ranking, yet each costs a metric
    if w.sum() <= 1e-12:
        best = max(cands, key=lambda m: (np.mean([target_quality(bench, t, {m: 1.0}, "last", combination)["tau"]
                                                  for t in targets]), -cands.index(m)))
        return {best: 1.0}
    total = float(w.sum())
    return {m: float(v) / total for m, v in zip(cands, w, strict=True) if v > 1e-12}


def fit_weights(bench: Benchmark, targets: Sequence[str], candidates: Sequence[str] | None = None, *,
                max_units: int = 6, min_gain: float = 0.005, rule: str = "last",
                combination: str = "rank", method: str = "stagewise") -> dict[str, float]:
    """The weights of the default on ``targets``: by forward stagewise selection (``method="stagewise"``,
    below) or by pooled non-negative ridge regression (``"nnls"``, :func:`fit_weights_nnls`).

    Forward stagewise weights: start from nothing; at each step add one unit of weight to the candidate
    metric that most raises the mean weighted τ over ``targets``; stop after ``max_units`` units or when
    the best step gains less than ``min_gain``. The result has non-negative rational weights summing to 1
    and at most ``max_units`` metrics — few enough free parameters not to overfit a handful of targets.

    Ties between candidates go to the alphabetically first, so the fit is deterministic.
    """
    if method not in WEIGHT_METHODS:
        raise ValueError(f"unknown weight method {method!r}; known: {WEIGHT_METHODS}")
    if not targets:
        raise ValueError("fit_weights needs at least one training target")
    unknown = [t for t in targets if t not in bench.targets]
    if unknown:
        raise ValueError(f"targets without ground truth: {unknown}")
    cands = sorted(candidates if candidates is not None else bench.metrics)
    if not cands:
        raise ValueError("no candidate metrics")
    if max_units < 1:
        raise ValueError(f"max_units must be >= 1, got {max_units}")
    if method == "nnls":
        return fit_weights_nnls(bench, targets, cands, combination=combination)
    units: dict[str, int] = {}
    best_score = -math.inf
    for _ in range(max_units):
        step_best, step_metric = -math.inf, None
        for m in cands:
            trial = dict(units)
            trial[m] = trial.get(m, 0) + 1
            score = float(np.mean([target_quality(bench, t, trial, rule, combination)["tau"] for t in targets]))
            if score > step_best + 1e-12:
                step_best, step_metric = score, m
        if units and step_best < best_score + min_gain:
            break
        units[step_metric] = units.get(step_metric, 0) + 1
        best_score = step_best
    total = sum(units.values())
    return {m: u / total for m, u in sorted(units.items())}


def layer_rule_quality(bench: Benchmark, target: str, weights: Mapping[str, float], rule: str,
                       combination: str = "rank") -> dict[str, float]:
    """Cut-point check on one target: mean fine-tune accuracy over sources at the rule's chosen tap, at the
    last tap and at each source's best tap, and the regret (best − chosen)."""
    srcs = sorted({s for t, s, _ in bench.cut_truth if t == target})
    if not srcs:
        raise ValueError(f"no cut-point truth for target {target}")
    scores = {k: v for k, v in bench.target_scores(target).items() if k[0] in srcs}
    chosen = choose_layers(scores, {s: bench.layers[s] for s in srcs}, weights, bench.directions, rule, combination)
    acc_rule, acc_last, acc_best = [], [], []
    for s in srcs:
        taps = bench.layers[s]
        cut = {ly: bench.cut_truth.get((target, s, ly)) for ly in taps}
        if any(v is None for v in cut.values()):
            raise ValueError(f"cut-point truth for ({target}, {s}) misses taps {[ly for ly, v in cut.items() if v is None]}")
        acc_rule.append(cut[chosen[s][0]])
        acc_last.append(cut[taps[-1]])
        acc_best.append(max(cut.values()))
    return {"rule": float(np.mean(acc_rule)), "last": float(np.mean(acc_last)), "best": float(np.mean(acc_best)),
            "regret": float(np.mean(np.array(acc_best) - np.array(acc_rule))),
            "chosen": {s: chosen[s][0] for s in srcs}}


def fit_layer_rule(bench: Benchmark, targets: Sequence[str], weights: Mapping[str, float],
                   rules: Sequence[str] = LAYER_RULES, combination: str = "rank") -> str:
    """The rule with the highest mean cut-point fine-tune accuracy over ``targets``; ``last`` unless another
    rule is strictly better (and ``last`` when no target has cut-point truth)."""
    cut = [t for t in targets if t in bench.cut_targets]
    if "last" not in rules:
        raise ValueError("the rules must include 'last' (the fallback)")
    if not cut:
        return "last"
    mean = {r: float(np.mean([layer_rule_quality(bench, t, weights, r, combination)["rule"] for t in cut]))
            for r in rules}
    best = max(rules, key=lambda r: (mean[r], r == "last"))
    return best if mean[best] > mean["last"] + 1e-12 else "last"


def fit_recipe(bench: Benchmark, targets: Sequence[str], candidates: Sequence[str] | None = None,
               recipes: Sequence[tuple[str, str]] = RECIPES, **fit_kw: Any) -> tuple[tuple[str, str], dict[str, float]]:
    """Choose the fit recipe — the combination family and the weight method — on ``targets`` by an inner
    leave-one-target-out: for each recipe, fit the weights on all but one target and score the one left
    out; the recipe with the best mean τ wins (ties: the earlier in ``recipes``; fewer than 3 targets or one
    recipe: the first). Returns ``((family, method), {"family/method": inner τ})``.

    Choosing on held-out folds, not on the fit itself, keeps the choice from rewarding the recipe that
    memorises the training targets best."""
    recipes = [tuple(r) for r in recipes]
    bad = [r for r in recipes if r[0] not in COMBINATIONS or r[1] not in WEIGHT_METHODS]
    if bad or not recipes:
        raise ValueError(f"recipes must be (family in {COMBINATIONS}, method in {WEIGHT_METHODS}) pairs, got {bad or recipes}")
    targets = list(targets)
    if len(targets) < 3 or len(recipes) == 1:
        return recipes[0], {}
    inner: dict[str, float] = {}
    for fam, method in recipes:
        taus = []
        for held in targets:
            train = [t for t in targets if t != held]
            w = fit_weights(bench, train, candidates, combination=fam, method=method, **fit_kw)
            taus.append(target_quality(bench, held, w, "last", fam)["tau"])
        inner[f"{fam}/{method}"] = float(np.mean(taus))
    best = max(range(len(recipes)), key=lambda i: (inner["/".join(recipes[i])], -i))
    return recipes[best], inner


def mix_label_free(weights: Mapping[str, float], metric: str, share: float) -> dict[str, float]:
    """``weights`` scaled to ``1 − share`` with ``share`` given to ``metric`` (``share`` in [0, 1))."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"share must be in [0, 1), got {share!r}")
    _check_weights(weights)
    total = float(sum(weights.values()))
    out = {m: (1.0 - share) * float(w) / total for m, w in weights.items()}
    if share > 0:
        out[metric] = out.get(metric, 0.0) + share
    return out


def fit_label_free_share(bench: Benchmark, targets: Sequence[str], weights: Mapping[str, float],
                         candidates: Sequence[str], *, combination: str = "rank", min_gain: float = 0.005,
                         shares: Sequence[float] = LABEL_FREE_SHARES) -> tuple[dict[str, float], dict[str, Any]]:
    """Give one label-free metric a share of the label-aware ``weights``, chosen on ``targets``.

    Every (label-free candidate, share) pair of ``shares`` is scored by the mean weighted τ over ``targets``
    (last layer); a share above 0 is kept only when it beats the label-aware weights alone by ``min_gain``
    (ties: the smaller share, then the alphabetically first metric). Returns the weights and a record of the
    choice (``{"metric", "share", "tau": {"metric@share": τ}}``)."""
    if not shares or shares[0] != 0.0 or any(not 0.0 <= s < 1.0 / 3.0 for s in shares):
        raise ValueError(f"shares must start at 0 and stay below 1/3, got {shares}")
    free = sorted(m for m in candidates if m in bench.label_free and m not in weights)
    base = float(np.mean([target_quality(bench, t, weights, "last", combination)["tau"] for t in targets]))
    record: dict[str, Any] = {"metric": None, "share": 0.0, "tau": {"none": base}}
    best, best_w = base + min_gain, dict(weights)
    for m in free:
        for share in shares[1:]:
            trial = mix_label_free(weights, m, share)
            tau = float(np.mean([target_quality(bench, t, trial, "last", combination)["tau"] for t in targets]))
            record["tau"][f"{m}@{share:g}"] = tau
            if tau > best + 1e-12:
                best, best_w = tau, trial
                record.update(metric=m, share=float(share))
    return best_w, record


def fit_all(bench: Benchmark, targets: Sequence[str], candidates: Sequence[str] | None = None,
            recipes: Sequence[tuple[str, str]] = RECIPES, **fit_kw: Any) -> dict[str, Any]:
    """The whole fit on ``targets``: the recipe (:func:`fit_recipe`) and the weights (:func:`fit_weights`)
    over the label-aware candidates, a label-free metric's share (:func:`fit_label_free_share`), then the
    layer rule (:func:`fit_layer_rule`)."""
    cands = sorted(candidates if candidates is not None else bench.metrics)
    aware = [m for m in cands if m not in bench.label_free]
    if not aware:
        raise ValueError("the fit needs at least one candidate metric that reads the target's labels")
    (family, method), inner = fit_recipe(bench, targets, aware, recipes, **fit_kw)
    w = fit_weights(bench, targets, aware, combination=family, method=method, **fit_kw)
    w, free = fit_label_free_share(bench, targets, w, cands, combination=family,
                                   min_gain=fit_kw.get("min_gain", 0.005))
    rule = fit_layer_rule(bench, targets, w, combination=family)
    return {"weights": w, "layer_rule": rule, "combination": family, "weight_method": method, "inner_tau": inner,
            "label_free": free}


def leave_one_target_out(bench: Benchmark, targets: Sequence[str] | None = None,
                         candidates: Sequence[str] | None = None,
                         recipes: Sequence[tuple[str, str]] = RECIPES, **fit_kw: Any) -> dict[str, Any]:
    """For each target in turn: fit the family, weights and layer rule on the *other* targets only
    (:func:`fit_all`), then score the held-out target. Returns ``{"per_target": {t: {...}}, "mean": {...}}``."""
    targets = list(targets if targets is not None else bench.targets)
    if len(targets) < 2:
        raise ValueError("leave-one-target-out needs at least 2 targets")
    per: dict[str, dict[str, Any]] = {}
    for held in targets:
        train = [t for t in targets if t != held]
        f = fit_all(bench, train, candidates, recipes, **fit_kw)
        w, rule, fam = f["weights"], f["layer_rule"], f["combination"]
        q = target_quality(bench, held, w, rule, fam)
        entry: dict[str, Any] = {**q, "weights": w, "layer_rule": rule, "combination": fam,
                                 "weight_method": f["weight_method"], "label_free": f["label_free"],
                                 "fitted_on": train}
        if held in bench.cut_targets:
            lq = layer_rule_quality(bench, held, w, rule, fam)
            entry["cut"] = {k: v for k, v in lq.items() if k != "chosen"}
        per[held] = entry
    mean = {k: float(np.mean([per[t][k] for t in targets])) for k in ("tau", "pearson", "top1", "top3")}
    return {"per_target": per, "mean": mean}


# -- the stored default -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FittedDefault:
    """The default ranking as data: which metrics, which weights, which layer rule, fitted on what."""

    version: int
    task_type: str
    metrics: tuple[str, ...]
    weights: dict[str, float]
    directions: dict[str, bool]
    layer_rule: str
    ground_truth_digest: str
    fitted_on: tuple[str, ...]
    loto: dict[str, Any] = field(default_factory=dict)
    method: dict[str, Any] = field(default_factory=dict)
    combination: str = "rank"

    def __post_init__(self) -> None:
        if self.combination not in COMBINATIONS:
            raise ValueError(f"unknown combination {self.combination!r}; known: {COMBINATIONS}")
        if not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"version must be a positive integer, got {self.version!r}")
        w = _check_weights(self.weights)
        if abs(sum(self.weights.values()) - 1.0) > 1e-9 or set(w) != set(self.weights):
            raise ValueError(f"weights must be positive and sum to 1, got {self.weights}")
        if tuple(sorted(self.weights)) != tuple(self.metrics):
            raise ValueError(f"metrics {self.metrics} must be the sorted names of the weights {sorted(self.weights)}")
        missing = [m for m in self.metrics if m not in self.directions]
        if missing:
            raise ValueError(f"no direction for metric(s) {missing}")
        if self.layer_rule not in LAYER_RULES:
            raise ValueError(f"unknown layer rule {self.layer_rule!r}; known: {LAYER_RULES}")
        if not re.fullmatch(r"[0-9a-f]{64}", self.ground_truth_digest):
            raise ValueError("ground_truth_digest must be a sha256 hex digest")
        if not self.fitted_on:
            raise ValueError("fitted_on must name the targets the default was fitted on")

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, "version": self.version, "task_type": self.task_type,
                "metrics": list(self.metrics), "weights": dict(sorted(self.weights.items())),
                "directions": {m: ("higher" if self.directions[m] else "lower") for m in self.metrics},
                "combination": self.combination, "normalisation": NORMALISATIONS[self.combination],
                "layer_rule": self.layer_rule, "ground_truth_digest": self.ground_truth_digest,
                "fitted_on": list(self.fitted_on), "method": self.method, "loto": self.loto}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FittedDefault:
        if data.get("format") not in READABLE_FORMATS:
            raise ValueError(f"unsupported default-ranking format {data.get('format')!r} (readable: {READABLE_FORMATS})")
        try:
            directions = {m: {"higher": True, "lower": False}[d] for m, d in data["directions"].items()}
            return cls(version=int(data["version"]), task_type=str(data["task_type"]),
                       metrics=tuple(data["metrics"]), weights={m: float(w) for m, w in data["weights"].items()},
                       directions=directions, layer_rule=str(data["layer_rule"]),
                       ground_truth_digest=str(data["ground_truth_digest"]), fitted_on=tuple(data["fitted_on"]),
                       loto=dict(data.get("loto") or {}), method=dict(data.get("method") or {}),
                       combination=str(data.get("combination", "rank")))
        except KeyError as exc:
            raise ValueError(f"default-ranking JSON lacks {exc}") from None

    def rank(self, scores: Mapping[tuple[str, str], Mapping[str, float]],
             layers: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, float]]:
        """``{source: (layer, score)}`` for one target — what the rank stage of a job computes."""
        return choose_layers(scores, layers, self.weights, self.directions, self.layer_rule, self.combination)

    @property
    def name(self) -> str:
        return f"{self.task_type}-v{self.version}"

    @property
    def aggregation(self) -> str:
        """The ``app.ranking.aggregate`` method that computes this default's combined score."""
        return f"{self.combination}_weighted"


def fit_default(bench: Benchmark, *, ground_truth_digest: str, version: int, task_type: str = "classification",
                targets: Sequence[str] | None = None, candidates: Sequence[str] | None = None,
                max_units: int = 6, min_gain: float = 0.005,
                recipes: Sequence[tuple[str, str]] = RECIPES, loto: dict[str, Any] | None = None) -> FittedDefault:
    """Fit on all ``targets`` (the shipped default) and record the leave-one-target-out estimate of how it
    does on a target it was not fitted on (``loto``: that estimate when the caller already computed it with
    the same targets, candidates and options)."""
    targets = list(targets if targets is not None else bench.targets)
    kw = {"max_units": max_units, "min_gain": min_gain}
    if loto is None:
        loto = leave_one_target_out(bench, targets, candidates, recipes, **kw)
    elif sorted(loto.get("per_target", {})) != sorted(targets):
        raise ValueError("the leave-one-target-out estimate given covers other targets than the fit")
    f = fit_all(bench, targets, candidates, recipes, **kw)
    w = f["weights"]
    cands = sorted(candidates if candidates is not None else bench.metrics)
    return FittedDefault(version=version, task_type=task_type, metrics=tuple(sorted(w)), weights=w,
                         directions={m: bool(bench.directions[m]) for m in w}, layer_rule=f["layer_rule"],
                         ground_truth_digest=ground_truth_digest, fitted_on=tuple(targets), loto=loto,
                         combination=f["combination"],
                         method={"weights": f["weight_method"], "max_units": max_units, "min_gain": min_gain,
                                 "ridge": RIDGE, "min_weight": MIN_WEIGHT, "candidates": cands, "layer_rules": list(LAYER_RULES),
                                 "recipes": ["/".join(r) for r in recipes],
                                 "recipe_choice": "inner leave-one-target-out mean weighted tau",
                                 "inner_tau": f["inner_tau"],
                                 "label_free": {**f["label_free"], "candidates": sorted(set(cands) & bench.label_free),
                                                "shares": list(LABEL_FREE_SHARES),
                                                "choice": "mean weighted tau on the fitted targets, "
                                                          "kept when it gains min_gain over none"}})


def default_path(task_type: str, version: int, directory: Path = DEFAULTS_DIR) -> Path:
    if not re.fullmatch(r"[a-z_]+", task_type):
        raise ValueError(f"task type must be lower-case letters and underscores, got {task_type!r}")
    return Path(directory) / f"{task_type}-v{int(version)}.json"


def write_default(default: FittedDefault, directory: Path = DEFAULTS_DIR) -> Path:
    """Write ``<task_type>-v<version>.json``; refuses to overwrite an existing version."""
    path = default_path(default.task_type, default.version, directory)
    if path.exists():
        raise FileExistsError(f"{path} exists: a fitted default is never overwritten, bump the version")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(default.to_json(), indent=2, sort_keys=False) + "\n")
    return path


def _stored(task_type: str, directory: Path) -> dict[int, Path]:
    out = {}
    for p in Path(directory).glob(f"{task_type}-v*.json"):
        m = _FILE_RE.match(p.name)
        if m and m["task"] == task_type:
            out[int(m["version"])] = p
    return out


def versions(task_type: str, directory: Path | Sequence[Path] = DEFAULTS_DIR) -> list[int]:
    """The stored versions of a task type's default, ascending, over one directory or several."""
    dirs = [directory] if isinstance(directory, str | Path) else list(directory)
    return sorted({v for d in dirs for v in _stored(task_type, Path(d))})


def load_default(task_type: str = "classification", version: int | None = None,
                 directory: Path | Sequence[Path] = DEFAULTS_DIR) -> FittedDefault:
    """The newest (or the named) stored default of a task type. ``directory`` may be a list (the built-in
    defaults and a deployment's own refits): the newest version over all of them wins, and one version
    stored in two places must be the same file."""
    dirs = [directory] if isinstance(directory, str | Path) else list(directory)
    found: dict[int, Path] = {}
    for d in dirs:
        for v, p in _stored(task_type, Path(d)).items():
            if v in found and found[v].read_bytes() != p.read_bytes():
                raise ValueError(f"version {v} of the {task_type!r} default differs between {found[v]} and {p}")
            found.setdefault(v, p)
    if not found:
        raise FileNotFoundError(f"no fitted default for {task_type!r} in {', '.join(map(str, dirs))}")
    v = max(found) if version is None else int(version)
    if v not in found:
        raise FileNotFoundError(f"no version {v} of the {task_type!r} default; have {sorted(found)}")
    default = FittedDefault.from_json(json.loads(found[v].read_text()))
    if default.version != v or default.task_type != task_type:
        raise ValueError(f"{found[v]} holds {default.task_type} v{default.version}")
    return default


def file_digest(task_type: str, version: int, directory: Path | Sequence[Path] = DEFAULTS_DIR) -> str:
    """sha256 of the stored JSON of a default: what a ranking names, so the exact data can be found again."""
    import hashlib

    dirs = [directory] if isinstance(directory, str | Path) else list(directory)
    for d in dirs:
        p = _stored(task_type, Path(d)).get(int(version))
        if p is not None:
            return hashlib.sha256(p.read_bytes()).hexdigest()
    raise FileNotFoundError(f"no version {version} of the {task_type!r} default")


def targets_of(keys: Iterable[tuple]) -> list[str]:
    return sorted({k[0] for k in keys})
