"""The metric registry as the API serves it: every metric's description, the capability matrix, and the
metrics a ranking computes when its request names none."""

from __future__ import annotations

from typing import Any

from app.enums import TaskType


def metric_catalogue() -> dict[str, Any]:
    from app.transferability import METRICS, capability_matrix, default_metrics

    return {
        "metrics": [{**spec.to_dict(), **_guide(spec.name)} for spec in METRICS.values()],
        "capability_matrix": capability_matrix(),
        "defaults": {task.value: list(default_metrics(task.value)) for task in TaskType},
    }


def _guide(name: str) -> dict[str, str]:
    """The metric's meaning and range for readers of the table (``app.transferability.guide.GUIDE``)."""
    from app.transferability.guide import GUIDE

    entry = GUIDE.get(name)
    return entry.to_dict() if entry is not None else {"meaning": "", "range": ""}
