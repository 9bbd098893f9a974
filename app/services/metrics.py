"""The metric registry as the API serves it."""

from __future__ import annotations

from typing import Any

from app.services.rankings import DEFAULT_METRICS


def metric_catalogue() -> dict[str, Any]:
    from app.transferability import METRICS, capability_matrix

    return {
        "metrics": [spec.to_dict() for spec in METRICS.values()],
        "capability_matrix": capability_matrix(),
        "defaults": {str(task.value): list(names) for task, names in DEFAULT_METRICS.items()},
    }
