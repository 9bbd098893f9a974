"""The metric registry as the API serves it: every metric's description, the capability matrix, the
metrics a ranking computes when its request names none, and what each metric typically costs.

Costs come from stored job timings, not from a calibration run at request time: every value a ranking
computed (not read from the score cache) records its seconds, its sample count and its feature count;
each is scaled linearly to 1,000 samples × 512 features and the median over the most recent rows is
served, with how many rows it rests on and the median size they were measured at (linear scaling is a
simplification: k-NN and the OT distances grow faster than linearly in the samples).
"""

from __future__ import annotations

import statistics
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import MetricScore
from app.enums import TaskType
from app.errors import Unavailable, raises
from app.settings import Settings

#: the most recent metric rows the cost summary reads
COST_ROWS = 5000
COST_BASIS = ("stored job timings: the seconds of values rankings computed (score-cache hits excluded), each "
              "scaled linearly to 1,000 samples × 512 features; median over the most recent "
              f"{COST_ROWS} rows")


@raises(Unavailable)  # the costs read the database
def metric_catalogue(session: Session | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """The catalogue; with ``settings``, also the default ranking of each task type (``rankers``): what a
    ranking with ``aggregation="default"`` uses now."""
    from app.services.rankers import rankers
    from app.transferability import METRICS, NOT_PROVIDED, POOL_SCORES, capability_matrix, default_metrics

    out: dict[str, Any] = {
        "metrics": [{**spec.to_dict(), **_guide(spec.name)} for spec in METRICS.values()],
        "capability_matrix": capability_matrix(),
        "defaults": {task.value: list(default_metrics(task.value)) for task in TaskType},
        "pool_scores": [pool.to_dict() for pool in POOL_SCORES.values()],
        "not_provided": dict(NOT_PROVIDED),
    }
    if settings is not None:
        out["rankers"] = rankers(settings)
    if session is not None:
        out["costs"] = metric_costs(session)
        out["cost_basis"] = COST_BASIS
    return out


def _registry_name(column: str) -> str | None:
    """The registry metric behind a ``metric_scores.metric`` value (a similarity key → its distance, a
    difficulty field → the difficulty metric), or ``None`` when it names none."""
    from app.services.rankings.plan import DIFFICULTY_PREFIX, SIMILARITY_PREFIX
    from app.transferability import METRICS, spec_of, task_difficulty

    if column.startswith(DIFFICULTY_PREFIX):
        return spec_of(task_difficulty).name
    name = column[len(SIMILARITY_PREFIX):] if column.startswith(SIMILARITY_PREFIX) else column
    return name if name in METRICS else None


def metric_costs(session: Session, limit: int = COST_ROWS) -> dict[str, dict[str, float | int]]:
    """``{metric: {seconds_per_1k_x_512, rows, median_seconds, median_samples, median_features}}`` from the
    most recent ``limit`` computed metric rows (see the module docstring)."""
    if limit < 1:
        raise ValueError(f"limit must be ≥ 1, got {limit}")
    seen: dict[str, list[tuple[float, float, float]]] = {}
    query = (select(MetricScore.metric, MetricScore.seconds, MetricScore.details)
             .order_by(MetricScore.created_at.desc()).limit(limit))
    for column, seconds, details in session.execute(query):
        details = details or {}
        name = _registry_name(column)
        n, dim = details.get("n_samples"), details.get("dim")
        if name is None or details.get("cached", False) or not n or not dim or seconds <= 0:
            continue  # a cache hit, a row from before sizes were stored, or a difficulty field after the first
        seen.setdefault(name, []).append((float(seconds), float(n), float(dim)))
    return {name: {"seconds_per_1k_x_512": statistics.median(s * (1000 / n) * (512 / d) for s, n, d in rows),
                   "rows": len(rows),
                   "median_seconds": statistics.median(s for s, _, _ in rows),
                   "median_samples": statistics.median(n for _, n, _ in rows),
                   "median_features": statistics.median(d for _, _, d in rows)}
            for name, rows in sorted(seen.items())}


def _guide(name: str) -> dict[str, str]:
    """The metric's meaning and range for readers of the table (``app.transferability.guide.GUIDE``)."""
    from app.transferability.guide import GUIDE

    entry = GUIDE.get(name)
    return entry.to_dict() if entry is not None else {"meaning": "", "range": ""}
