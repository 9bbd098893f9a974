"""The default ranking a job uses: the newest fitted default (``app.ranking.fit``) of the dataset's task type,
from the built-in ones (``app/ranking/defaults``) and this deployment's refits (``Settings.rankers_dir``).

A ranking that does not name its aggregation (``aggregation="default"``) is frozen at creation with the
default's name, version, file digest, ground-truth digest, family, weights and layer rule
(:func:`ranker_block`), so the job computes exactly that ranking even after a newer version is written, and
a reader can find the data it came from. ``GET /v1/metrics`` lists the same blocks (:func:`rankers`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.schemas.rankings import RankingCreate
from app.settings import Settings


def ranker_dirs(settings: Settings) -> list[Path]:
    """Where fitted defaults are looked up: the built-in ones, then this deployment's."""
    from app.ranking.fit import DEFAULTS_DIR

    return [DEFAULTS_DIR, Path(settings.rankers_dir)]


def ranker_block(settings: Settings, task_type: str, version: int | None = None) -> dict[str, Any] | None:
    """What a job stores about its default ranking, or ``None`` when the task type has no fitted default."""
    from app.ranking import fit

    dirs = ranker_dirs(settings)
    try:
        default = fit.load_default(task_type, version, dirs)
    except FileNotFoundError:
        return None
    loto = (default.loto or {}).get("mean") or {}
    return {"name": default.name, "task_type": default.task_type, "version": default.version,
            "digest": fit.file_digest(task_type, default.version, dirs),
            "ground_truth_digest": default.ground_truth_digest, "combination": default.combination,
            "aggregation": default.aggregation, "weights": dict(default.weights),
            "directions": {m: ("higher" if d else "lower") for m, d in default.directions.items()},
            "layer_rule": default.layer_rule, "fitted_on": list(default.fitted_on),
            "loto_tau": loto.get("tau"), "loto_top1": loto.get("top1")}


def resolve_aggregation(request: RankingCreate, task_type: str, settings: Settings,
                         metrics: list[str]) -> tuple[list[str], dict[str, Any]]:
    """The metrics to compute and the frozen aggregation: ``{"method", "weights", "ranker", "layer_mode",
    "layer_rule", "note"}``. ``"default"`` resolves to the newest fitted default of the task type when the
    request names no metrics (its metrics join the registry's defaults); a request that names its metrics,
    or a task type with no fitted default, gets the rank mean, and ``note`` says why."""
    if isinstance(request.aggregation, dict):
        return metrics, {"method": "weighted", "weights": dict(request.aggregation), "ranker": None,
                         "layer_mode": request.layer_mode or "best", "layer_rule": None, "note": None}
    if request.aggregation == "rank_mean":
        return metrics, {"method": "rank_mean", "weights": None, "ranker": None,
                         "layer_mode": request.layer_mode or "best", "layer_rule": None, "note": None}
    block = ranker_block(settings, task_type)
    note = None
    if request.metrics:
        note = ("the request names its metrics: their rank mean (the fitted default ranking applies when "
                "'metrics' is omitted)")
        block = None
    elif block is None:
        note = f"no fitted default ranking for {task_type} targets: the rank mean of the default metrics"
    else:
        weights = dict(block["weights"])
        metrics = metrics + [m for m in sorted(weights) if m not in metrics]
    if block is None:
        return metrics, {"method": "rank_mean", "weights": None, "ranker": None,
                         "layer_mode": request.layer_mode or "best", "layer_rule": None, "note": note}
    rule = block["layer_rule"]
    mode = request.layer_mode or ("last" if rule == "last" else "fitted")
    return metrics, {"method": block["aggregation"], "weights": weights, "ranker": block, "layer_mode": mode,
                     "layer_rule": rule if mode == "fitted" else None, "note": note}


def rankers(settings: Settings) -> dict[str, dict[str, Any]]:
    """``{task type: the block of its newest default}`` for every task type that has one."""
    from app.enums import TaskType

    out = {}
    for task in TaskType:
        block = ranker_block(settings, task.value)
        if block is not None:
            out[task.value] = block
    return out


# -- refitting from the benchmark and this project's own measurements ---------------------------------------------
def _direction(metric: str) -> bool | None:
    """True when higher is better, None for a field the default cannot weigh (similarity, difficulty: they
    are not metrics a ranking's aggregate takes)."""
    from app.transferability import METRICS

    spec = METRICS.get(metric)
    if spec is None or spec.kind not in ("transferability", "baseline"):
        return None
    return spec.direction == "higher_is_better"


def _head_metrics() -> list[str]:
    from app.transferability import METRICS

    return [n for n, s in METRICS.items() if s.head_only]


def project_benchmark(session, project_id) -> tuple[Any, list[str]]:
    """A :class:`~app.ranking.fit.Benchmark` from one project's finished ranking jobs with probes: per job
    (a target named ``job:<id>``), the mean fine-tune accuracy the probe stage measured for each probed
    backbone at its last layer, and the job's stored metric values. A job counts when at least two of its
    backbones were fine-tuned at their last layer. Returns ``(benchmark or None, notes)``."""
    from collections import defaultdict

    from sqlalchemy import select

    from app.db.tables import Job, MetricScore, ProbeRun, Ranking
    from app.jobs.status import JobStatus
    from app.ranking.fit import Benchmark

    notes: list[str] = []
    jobs = session.scalars(select(Job).where(Job.project_id == project_id, Job.kind == "ranking",
                                             Job.status == JobStatus.SUCCEEDED.value)).all()
    scores: dict[tuple[str, str, str], dict[str, float]] = {}
    truth: dict[tuple[str, str], float] = {}
    layers: dict[str, list[str]] = {}
    heads = set(_head_metrics())
    for job in jobs:
        # full-budget fine-tunes only: a successive-halving rung's short runs measure another budget
        runs = session.scalars(select(ProbeRun).where(ProbeRun.job_id == job.id, ProbeRun.arm == "finetune",
                                                      ProbeRun.rung_steps == 0)).all()
        if not runs:
            continue
        target = f"job:{job.id}"
        rows = session.scalars(select(Ranking).where(Ranking.job_id == job.id)).all()
        taps = {}
        for r in rows:
            view = (r.details or {}).get("layers") or {}
            order = sorted(view, key=lambda ly: (view[ly].get("depth") is None, view[ly].get("depth") or 0.0))
            if order:
                taps[r.backbone_id] = order
        acc: dict[str, list[float]] = defaultdict(list)
        for run in runs:
            if run.metric is not None and run.backbone_id in taps and run.layer == taps[run.backbone_id][-1]:
                acc[run.backbone_id].append(float(run.metric))
        if len(acc) < 2:
            notes.append(f"{target}: fewer than 2 backbones fine-tuned at their last layer; left out")
            continue
        values: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        head: dict[str, dict[str, float]] = defaultdict(dict)
        for m in session.scalars(select(MetricScore).where(MetricScore.job_id == job.id)):
            v = float("nan") if m.value is None else float(m.value)
            if m.metric in heads:
                head[m.backbone_id][m.metric] = v
            else:
                values[(m.backbone_id, m.layer)][m.metric] = v
        for src, accs in acc.items():
            layers.setdefault(src, taps[src])
            for ly in taps[src]:
                scores[(target, src, ly)] = {**values.get((src, ly), {}), **head.get(src, {})}
            truth[(target, src)] = sum(accs) / len(accs)
    if not truth:
        return None, notes
    metrics = sorted({m for v in scores.values() for m in v})
    directions = {m: bool(d) for m in metrics if (d := _direction(m)) is not None}
    from app.transferability import label_free_metrics

    return Benchmark(scores=scores, directions=directions, layers=layers, truth=truth,
                     label_free=frozenset(label_free_metrics())), notes


def refit(settings: Settings, bench_dir: Path, *, session=None, project_id=None, write: bool = True,
          task_type: str = "classification") -> dict[str, Any]:
    """Refit the default ranking on the benchmark in ``bench_dir`` plus (with a session and a project) the
    project's own probe measurements, and compare it with the current default on the same targets.

    ``before``: the current default, unchanged, on every target (its weights, family and layer rule);
    ``after``: the refit's leave-one-target-out estimate on the same targets (each target scored by a fit
    that never saw it). A new version is written to ``settings.rankers_dir`` only when ``after`` is not
    worse than ``before`` (and ``write``). Returns both, the new default and where it went."""
    import numpy as np

    from app.ranking import benchmark as B
    from app.ranking import fit
    from app.transferability import label_free_metrics

    loaded = B.load_benchmark(bench_dir, _direction, _head_metrics(), label_free_metrics())
    bench, notes = loaded.bench, [f"{t}: incomplete in the benchmark; left out" for t in loaded.incomplete]
    targets = list(loaded.fit_targets)
    digest = loaded.digest
    if session is not None and project_id is not None:
        extra, extra_notes = project_benchmark(session, project_id)
        notes += extra_notes
        if extra is not None:
            bench = B.merge(bench, extra)
            targets += extra.targets
            digest = hashlib_of(digest, extra)
    candidates = [m for m in sorted(bench.directions) if B.scored_everywhere(bench, m, targets)]
    if not candidates:
        raise ValueError("no metric has values on every target: nothing to fit")
    current = fit.load_default(task_type, None, ranker_dirs(settings))
    w = {m: v for m, v in current.weights.items() if m in bench.directions}
    if not w:
        raise ValueError(f"the current default {current.name} weighs {sorted(current.weights)}, none of which the "
                         "benchmark scores: it cannot be compared")
    before_per = {t: fit.target_quality(bench, t, w, current.layer_rule, current.combination)["tau"]
                  for t in targets}
    new = fit.fit_default(bench, ground_truth_digest=digest, version=max(fit.versions(task_type, ranker_dirs(settings))) + 1,
                          task_type=task_type, targets=targets, candidates=candidates)
    after_per = {t: e["tau"] for t, e in new.loto["per_target"].items()}
    before, after = float(np.mean(list(before_per.values()))), float(np.mean(list(after_per.values())))
    path = None
    if write and after >= before:
        path = fit.write_default(new, Path(settings.rankers_dir))
    return {"before": before, "after": after, "before_per_target": before_per, "after_per_target": after_per,
            "current": current.name, "new": new, "written": path, "targets": targets, "notes": notes}


def hashlib_of(digest: str, extra: Any) -> str:
    """The ground-truth digest of the benchmark plus a project's measurements (their truth values)."""
    import hashlib
    import json

    body = json.dumps(sorted((t, s, round(v, 6)) for (t, s), v in extra.truth.items()))
    return hashlib.sha256((digest + body).encode()).hexdigest()
