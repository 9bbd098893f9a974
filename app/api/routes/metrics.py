"""The metric catalogue: every metric's direction, inputs, reference variant, and the capability matrix."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.deps import SessionDep, SettingsDep
from app.api.errors import responses_for
from app.services.metrics import metric_catalogue

router = APIRouter(prefix="/v1/metrics", tags=["metrics"])


class MetricCatalogue(BaseModel):
    metrics: list[dict[str, Any]] = Field(description="One entry per metric (name, kind, direction, inputs, …).")
    capability_matrix: dict[str, Any] = Field(description="Task type × metric: which combinations are supported.")
    defaults: dict[str, list[str]] = Field(description="Metrics a ranking runs when it names none, by task type.")
    pool_scores: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Scores defined over the pool of a job's backbones (ETran, NCTI): a ranking may name them in "
                    "'metrics'; the job computes their per-model parts and combines them in the rank stage.")
    not_provided: dict[str, str] = Field(
        default_factory=dict, description="Peer metrics this service does not compute, and why.")
    costs: dict[str, dict[str, float | int]] = Field(
        description="Per metric: typical seconds per 1,000 samples × 512 features (seconds_per_1k_x_512), the "
                    "number of stored timings it rests on and their median seconds and size.")
    cost_basis: str = Field(description="Where the costs come from and how they are scaled.")
    rankers: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="By task type: the fitted default ranking a ranking with aggregation 'default' uses now "
                    "(name, version, file digest, ground-truth digest, family, weights, layer rule, "
                    "leave-one-target-out τ).")


@router.get("", operation_id="metrics-list", summary="The metric catalogue, the capability matrix and typical costs",
            responses=responses_for(metric_catalogue, public=True, validated=False))
def list_metrics(session: SessionDep, settings: SettingsDep) -> MetricCatalogue:
    return MetricCatalogue(**metric_catalogue(session, settings))
