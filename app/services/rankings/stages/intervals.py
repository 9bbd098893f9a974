"""Bootstrap rank intervals for the rank stage: resample the scored rows, recompute the metrics the registry
marks cheap enough (``MetricSpec.bootstrap``) at each backbone's chosen layer, re-aggregate, and read each
backbone's rank interval (widened to contain its reported rank) and its probability of ranking first.

A metric with a resampled kernel (``MetricSpec.resampled``) is not recomputed from the resampled rows: its
kernel is prepared once per backbone and layer (inputs validated, per-row work such as k-NN's neighbour lists
done once) and each replicate evaluates it on the resample's row multiplicities, which gives the value the
metric has on the materialised resample (up to rounding). The other metrics run on the materialised rows.

Every replicate value goes through the score cache like the score stage's (keyed by the resampled rows'
digest), so a repeated job's intervals are a lookup; the resamples are drawn from the plan's seed, so
they are the same rows every time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.db.score_cache import SqlScoreCache
from app.db.session import unit_of_work
from app.ranking import intervals_from_replicates
from app.services.rankings.inputs import RankingInputs
from app.services.rankings.recorded_warnings import recorded_warnings
from app.services.rankings.score_keys import ScoreKeys, metric_params
from app.services.rankings.stages.resamples import Resampled, resampled
from app.services.rankings.stages.score import metric_value


def rank_intervals(inputs: RankingInputs, names: list[str], chosen_layers: dict[str, str], metrics: list[str],
                   weights: dict[str, float] | None, method: str, should_stop: Callable[[], bool],
                   point_ranks: Mapping[str, float] | None = None) -> dict[str, tuple[Any, Any, Any]]:
    """``{backbone: (rank_low, rank_high, p_top1)}`` from ``plan.bootstrap`` replicates."""
    replicates = bootstrap_replicates(inputs, names, chosen_layers, metrics, should_stop)
    directions = inputs.plan.directions
    return intervals_from_replicates(
        names, replicates, {m: directions[m] for m in metrics}, method=method,
        weights={m: w for m, w in (weights or {}).items() if m in metrics} or None, point_ranks=point_ranks)


def bootstrap_unit(runtime: Any, job_id: Any, backbone: str, layer: str, metrics: list[str]) -> int:
    """One backbone's replicate values at its chosen layer, computed and stored in the score cache (the
    rank stage runs these as units, in parallel, and then reads every replicate as a cache hit)."""
    inputs = RankingInputs.load(runtime, job_id)
    try:
        return len(bootstrap_replicates(inputs, [backbone], {backbone: layer}, metrics, lambda: False))
    finally:
        inputs.close()


def score_then_bootstrap(runtime: Any, job_id: Any, backbone: str) -> dict[str, Any]:
    """The score stage's unit: :func:`~app.services.rankings.stages.score.score_backbone`, then — with the layer
    known before ranking — the backbone's bootstrap replicates in the same process, while its features and
    neighbour lists are at hand (:func:`bootstrap_ahead`); the rank stage reads them from the score cache."""
    from app.services.rankings.stages.score import score_backbone

    inputs = RankingInputs.load(runtime, job_id)
    try:
        out = score_backbone(inputs, backbone)
        bootstrap_ahead(inputs, backbone)
    finally:
        inputs.close()
    return out


def bootstrap_ahead(inputs: RankingInputs, backbone: str) -> None:
    """In the score unit, when the rank stage's layer is already known (``layer_mode="last"``): this
    backbone's replicates of the metrics the aggregate will bootstrap, into the score cache. A failure here
    only costs the rank stage the work (it computes what the cache lacks, and raises there if it must)."""
    import logging

    from app.transferability import METRICS

    plan = inputs.plan
    if plan.layer_mode != "last" or plan.bootstrap < 2 or len(plan.backbones) < 2:
        return
    weights = plan.resolved_aggregation.get("weights") or {}
    metrics = [m for m in dict.fromkeys(plan.requested_metrics or plan.metrics)
               if m in METRICS and METRICS[m].bootstrap and (not weights or weights.get(m, 0) > 0)]
    if not metrics:
        return
    try:
        bootstrap_replicates(inputs, [backbone], {backbone: inputs.layers(backbone)[-1]}, metrics, lambda: False)
    except Exception:  # pragma: no cover - the same computation runs again in the rank stage
        logging.getLogger("tscout.rank").exception("bootstrap replicates of %s ahead of the rank stage failed",
                                                   backbone)


@dataclass
class _Lookup:
    """What the bootstrap of some backbones reads: the resamples, the head probabilities (head metrics
    only), the layers each backbone's values average, one input digest per (backbone, metric, layer)
    (``None``: no source head), every (backbone, metric, layer, replicate)'s cache key and the cache's hits."""

    rs: Resampled
    probs: dict[str, Any]
    use: dict[str, list[str]]
    parts: dict[tuple[str, str], list[str | None]]
    wanted: dict[tuple[str, str, int, int], str]
    hits: dict[str, Any]


def _lookup(inputs: RankingInputs, keys: ScoreKeys, names: list[str], chosen_layers: dict[str, str],
            metrics: list[str]) -> _Lookup:
    from app.embeddings.pipeline import SOURCE_PROBS
    from app.transferability import METRICS

    rs = resampled(inputs)
    head = any(METRICS[m].head_only for m in metrics)
    probs = {b: inputs.source_probs(b) for b in names} if head else {}
    # (backbone, metric) → the layers whose values are averaged (one for a chosen layer, all for "mean")
    use = {b: inputs.layers(b) if chosen_layers[b] == "mean" else [chosen_layers[b]] for b in names}
    parts: dict[tuple[str, str], list[str | None]] = {}
    for b in names:
        for m in metrics:
            if METRICS[m].head_only:
                parts[(b, m)] = [None if probs.get(b) is None else keys.embedding(b, SOURCE_PROBS)]
            else:
                parts[(b, m)] = [keys.embedding(b, ly) for ly in use[b]]
    wanted = {(b, m, i, r): keys.key(m, [digest], rows=rs.digests[r])
              for (b, m), layer_digests in parts.items() for i, digest in enumerate(layer_digests)
              if digest is not None for r in range(len(rs.digests))}
    with inputs.runtime.sessions() as session:
        hits = SqlScoreCache(session).lookup(wanted.values())
    return _Lookup(rs, probs, use, parts, wanted, hits)


def backbones_missing_replicates(inputs: RankingInputs, names: list[str], chosen_layers: dict[str, str],
                                 metrics: list[str]) -> list[str]:
    """The backbones with a replicate value the score cache lacks, in ``names`` order: the rank stage runs
    bootstrap units for these only (the score units computed the others ahead, or an earlier job did)."""
    found = _lookup(inputs, ScoreKeys(inputs), names, chosen_layers, metrics)
    missing = {k[0] for k, key in found.wanted.items() if key not in found.hits}
    return [b for b in names if b in missing]


def bootstrap_replicates(inputs: RankingInputs, names: list[str], chosen_layers: dict[str, str],
                         metrics: list[str], should_stop: Callable[[], bool]) -> list[dict[str, list[float]]]:
    """``[{metric: [value per backbone]} per replicate]`` (fewer once ``should_stop()``), every value read
    from or written to the score cache."""
    from app.transferability import METRICS, single_thread_blas

    plan = inputs.plan
    runtime = inputs.runtime
    keys = ScoreKeys(inputs)
    found = _lookup(inputs, keys, names, chosen_layers, metrics)
    resamples, counts = found.rs.resamples, found.rs.counts
    probs, use, parts, wanted, hits = found.probs, found.use, found.parts, found.wanted, found.hits
    fresh: list[dict[str, Any]] = []
    kernels: dict[tuple[str, str, int], _Kernel] = {}

    def data_of(b: str, m: str, i: int, idx: np.ndarray | None) -> dict[str, Any]:
        if METRICS[m].head_only:
            p = probs[b][inputs.rows]
            return {"source_probs": p if idx is None else p[idx]}
        f = inputs.scored(b, use[b][i])
        return {"features": f if idx is None else f[idx]}

    def kernel_of(b: str, m: str, i: int) -> _Kernel:
        if (b, m, i) not in kernels:
            kernels[(b, m, i)] = _prepare(m, plan.task_type, plan.seed, **data_of(b, m, i, None), **inputs.target())
        return kernels[(b, m, i)]

    batched: dict[tuple[str, str, int, int], tuple[float | None, dict[str, Any], float]] = {}

    def from_batch(b: str, m: str, i: int, r: int, kernel: _Kernel) -> tuple[float | None, dict[str, Any], float]:
        """A kernel that evaluates many resamples at once does every replicate of (b, m, i) the cache lacks
        the first time one is asked for: (value, details, seconds) each, the batch's time shared out."""
        if (b, m, i, r) not in batched:
            todo = [q for q in range(len(resamples)) if hits.get(wanted[(b, m, i, q)]) is None]
            started = time.perf_counter() - kernel.take_prepare_seconds()
            outcomes = kernel.values([counts[q] for q in todo])
            seconds = (time.perf_counter() - started) / len(todo)
            for q, (v, details) in zip(todo, outcomes, strict=True):
                batched[(b, m, i, q)] = (v, details, seconds)
        return batched.pop((b, m, i, r))

    def value(b: str, m: str, r: int) -> float:
        spec = METRICS[m]
        per_layer = []
        for i, digest in enumerate(parts[(b, m)]):
            if digest is None:
                return float("nan")
            key = wanted[(b, m, i, r)]
            hit = hits.get(key)
            if hit is not None:
                v = hit.value
            else:
                kernel = kernel_of(b, m, i) if spec.resampled is not None else None
                started = time.perf_counter()
                if kernel is not None and kernel.batches:
                    v, details, seconds = from_batch(b, m, i, r, kernel)
                    started = time.perf_counter() - seconds
                elif kernel is None:
                    v, details = metric_value(m, plan.task_type, plan.seed, **data_of(b, m, i, resamples[r]),
                                              **inputs.target(resamples[r]))
                else:
                    v, details = kernel.value(counts[r])
                    started -= kernel.take_prepare_seconds()  # the first value carries the kernel's set-up
                fresh.append({"cache_key": key, "metric": m, "version": spec.version, "variant": spec.variant,
                              "value": v, "seconds": time.perf_counter() - started,
                              "details": {**details, "bootstrap": True}})
            if v is None:
                return float("nan")
            per_layer.append(v)
        return float(np.mean(per_layer))

    replicates = []
    # thousands of small products and factorisations: one BLAS thread each (threads only contend on a
    # shared machine, 40× slower for a 1600×32 by 32×32 product at load 9 on 2 cores)
    with single_thread_blas():
        for r in range(len(resamples)):
            if should_stop():
                break
            replicates.append({m: [value(b, m, r) for b in names] for m in metrics})
    if fresh:
        with unit_of_work(runtime.sessions) as session:
            SqlScoreCache(session).record(fresh)
    return replicates


class _Kernel:
    """A metric's resampled kernel on one backbone's inputs, or why it could not be prepared (the metric
    refuses these inputs; every replicate then records that error, as the materialised path would)."""

    def __init__(self, name: str, fn: Callable[[np.ndarray], float] | None, error: str | None,
                 details: dict[str, Any], prepare_seconds: float) -> None:
        self.name, self.fn, self.error, self.details = name, fn, error, details
        self._prepare_seconds = prepare_seconds

    def take_prepare_seconds(self) -> float:
        """The set-up time, once (then 0)."""
        seconds, self._prepare_seconds = self._prepare_seconds, 0.0
        return seconds

    @property
    def batches(self) -> bool:
        """Whether the kernel evaluates many resamples in one call (``fn.batch``, e.g. LogME's)."""
        return self.fn is not None and hasattr(self.fn, "batch")

    def values(self, many: list[np.ndarray]) -> list[tuple[float | None, dict[str, Any]]]:
        """(value, details) on each of many resamples in one call of ``fn.batch``, as :meth:`value` reports
        them one by one."""
        with recorded_warnings() as caught:
            outcomes = self.fn.batch(many)
        shared = sorted({*self.details.get("warnings", []), *(str(w.message) for w in caught)})
        out: list[tuple[float | None, dict[str, Any]]] = []
        for v, error, notes in outcomes:
            if error is not None:
                out.append((None, {"error": error, "resampled_kernel": True}))
                continue
            details: dict[str, Any] = {"resampled_kernel": True}
            if shared or notes:
                details["warnings"] = sorted({*shared, *notes})
            if not np.isfinite(v):
                out.append((None, {**details, "error": f"non-finite value {v}"}))
            else:
                out.append((float(v), details))
        return out

    def value(self, counts: np.ndarray) -> tuple[float | None, dict[str, Any]]:
        """(value, details) on one resample, as :func:`metric_value` reports them."""
        if self.fn is None:
            return None, {**self.details, "error": self.error}
        with recorded_warnings() as caught:
            try:
                v = self.fn(counts)
            except ValueError as exc:
                return None, {"error": str(exc), "resampled_kernel": True}
        details: dict[str, Any] = {"resampled_kernel": True}
        if caught or self.details.get("warnings"):
            details["warnings"] = sorted({*self.details.get("warnings", []), *(str(w.message) for w in caught)})
        if not np.isfinite(v):
            return None, {**details, "error": f"non-finite value {v}"}
        return float(v), details


def _prepare(name: str, task_type: str, seed: int, **data: Any) -> _Kernel:
    """The kernel of metric ``name`` on the full scored rows, with the job's keyword arguments."""
    from app.transferability import resampled_kernel

    started = time.perf_counter()
    with recorded_warnings() as caught:
        try:
            fn = resampled_kernel(name, task_type=task_type, **metric_params(name, seed), **data)
        except ValueError as exc:
            return _Kernel(name, None, str(exc), {"resampled_kernel": True}, time.perf_counter() - started)
    details = {"warnings": sorted({str(w.message) for w in caught})} if caught else {}
    return _Kernel(name, fn, None, details, time.perf_counter() - started)
