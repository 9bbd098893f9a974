"""Ranking jobs: the request, and the ranked table other services read back."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from app.enums import ProbeArm
from app.jobs.status import JobStatus
from app.schemas.common import ReadModel


class BackboneFilter(BaseModel):
    """Select catalogue entries instead of naming them."""

    model_config = ConfigDict(extra="forbid")

    family: str | None = Field(default=None, examples=["zoo"])
    modality: Literal["image", "text"] | None = None
    q: str | None = Field(default=None, description="Text search over id and description.")


class HalvingOptions(BaseModel):
    """Successive halving over the probed candidates: short budgets first, the best by fine-tune metric go on."""

    model_config = ConfigDict(extra="forbid")

    eta: int = Field(default=2, ge=2, le=8, description="Each rung keeps 1/eta of its candidates and multiplies "
                                                         "the step budget by eta, up to budget_steps.")
    finalists: int = Field(default=1, ge=1, le=50,
                           description="Candidates that reach the full budget and its sequential rounds.")
    min_steps: int | None = Field(default=None, ge=1, le=100_000,
                                  description="Smallest rung budget (default: one evaluation interval, 25 steps).")


class ProbeOptions(BaseModel):
    """Short fine-tunes of the top candidates against a same-architecture scratch baseline."""

    model_config = ConfigDict(extra="forbid")

    top_k: int = Field(default=3, ge=1, le=50, description="Probe the k best-ranked backbones (exactly k unless "
                                                           "include_suspicious adds flagged ones).")
    include_suspicious: bool = Field(
        default=False, description="Also probe up to max_suspicious sources flagged as suspicious (far domain or "
                                   "low score), lowest-ranked first: where negative transfer hides."
    )
    max_suspicious: int = Field(default=2, ge=0, le=50,
                                description="At most this many suspicious sources, lowest-ranked first.")
    seeds: int | None = Field(
        default=None, ge=2, le=50,
        description="A fixed number of paired seeds, in one round. Omit for the sequential design: rounds of "
                    "seeds (first_round, then round_size more) until each verdict settles, up to max_seeds.")
    first_round: int | None = Field(default=None, ge=2, le=50,
                                    description="Sequential design: seeds of the first round (TSCOUT_PROBE_FIRST_ROUND).")
    round_size: int | None = Field(default=None, ge=1, le=50,
                                   description="Sequential design: seeds per further round (TSCOUT_PROBE_ROUND_SIZE).")
    max_seeds: int | None = Field(default=None, ge=2, le=50,
                                  description="Sequential design: most seeds per candidate (TSCOUT_PROBE_MAX_SEEDS).")
    time_budget_seconds: float | None = Field(
        default=None, gt=0, le=7 * 24 * 3600,
        description="Wall-clock budget of the whole probe stage (TSCOUT_PROBE_TIME_BUDGET_SECONDS); candidates "
                    "still open when it is spent stop with stop_reason 'time_budget'.")
    candidates: list[str] | None = Field(
        default=None, min_length=1, max_length=50,
        description="Probe exactly these backbones of the ranking (instead of top_k and suspicious ones).")
    final_test_seeds: int | None = Field(
        default=None, ge=2, le=50,
        description="Where the design's one fixed-n test sits (default max_seeds). An extension keeps the original "
                    "job's value, so that more seeds never invalidate the error control.")
    budget_steps: int = Field(default=150, ge=1, le=100_000, description="Optimisation steps per run.")
    budget_seconds: float = Field(default=120.0, gt=0, le=24 * 3600, description="Wall-clock cap per run.")
    arms: list[ProbeArm] = Field(default_factory=lambda: [ProbeArm.finetune, ProbeArm.scratch, ProbeArm.linear])
    margin: float | None = Field(default=None, ge=0, le=1, description="Practical margin δ (default setting).")
    lr_grid: list[float] | None = Field(default=None, min_length=1, max_length=6)
    batch_size: int = Field(default=32, ge=1, le=4096)
    linear_evidence: bool = Field(
        default=False,
        description="Let the linear-probe arm (frozen trunk, head trained on the cached embeddings) settle a "
                    "'positive' verdict when the fine-tune evidence is still inconclusive and does not lean "
                    "negative: the candidate then stops receiving seeds. The verdict's decided_by says which arm "
                    "decided; negative transfer is only ever claimed on fine-tune evidence. Needs the linear arm.")
    halving: HalvingOptions | None = Field(
        default=None,
        description="Successive halving: every candidate first gets one round of paired seeds at a short budget "
                    "(finetune and scratch); a negative transfer settled there is final (short budgets favour the "
                    "pretrained weights), the best 1/eta by fine-tune metric go on to a budget eta times longer, "
                    "the others stop as 'abandoned' with a verdict for the budget they reached. The finalists "
                    "get the full budget and the sequential rounds. Holm runs over candidates × rungs. Needs the "
                    "sequential design (not 'seeds').")

    @model_validator(mode="after")
    def _one_design(self) -> ProbeOptions:
        sequential = [n for n in ("first_round", "round_size", "max_seeds") if getattr(self, n) is not None]
        if self.seeds is not None and sequential:
            raise ValueError(f"give either seeds (a fixed design) or {sequential} (the sequential design), not both")
        if self.first_round is not None and self.max_seeds is not None and self.first_round > self.max_seeds:
            raise ValueError(f"first_round ({self.first_round}) must not exceed max_seeds ({self.max_seeds})")
        if self.linear_evidence and ProbeArm.linear not in self.arms:
            raise ValueError("linear_evidence needs the 'linear' arm in arms")
        if self.halving is not None and self.seeds is not None:
            raise ValueError("halving runs the sequential design: give first_round/max_seeds instead of seeds")
        if self.halving is not None and self.halving.min_steps is not None \
                and self.halving.min_steps > self.budget_steps:
            raise ValueError(f"halving.min_steps ({self.halving.min_steps}) must not exceed budget_steps "
                             f"({self.budget_steps})")
        return self

    @field_validator("arms")
    @classmethod
    def _needs_pair(cls, arms: list[ProbeArm]) -> list[ProbeArm]:
        if ProbeArm.finetune not in arms or ProbeArm.scratch not in arms:
            raise ValueError("arms must include 'finetune' and 'scratch' (the verdict pairs them)")
        return list(dict.fromkeys(arms))


class ProbeExtension(BaseModel):
    """More evidence for chosen candidates of a finished ranking: more seeds (a higher cap) or another budget."""

    model_config = ConfigDict(extra="forbid")

    candidates: list[str] | None = Field(
        default=None, min_length=1, max_length=50,
        description="Backbones to probe further (default: those the ranking probed).")
    max_seeds: int = Field(ge=2, le=50, description="The new cap on paired seeds per candidate (≥ the old one).")
    time_budget_seconds: float | None = Field(default=None, gt=0, le=7 * 24 * 3600,
                                              description="Wall-clock budget of the extension's probe stage.")


class RankingCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "dataset_id": "6f1c1f3e-8a57-4d5e-9c8e-0b8e5a6f4d21",
                    "backbones": ["zoo:cnn_small.digits", "zoo:resnet_small.shapes"],
                    "layers": "auto",
                    "probe": {"top_k": 2, "seeds": 5, "budget_steps": 150},
                }
            ]
        },
    )

    dataset_id: uuid.UUID
    backbones: list[str] | BackboneFilter | None = Field(
        default=None, description="Backbone ids, a catalogue filter, or omitted for every compatible backbone; for a "
                                  "precomputed-features dataset, feature sets as 'features:<dataset id>'."
    )
    layers: Literal["auto", "last", "all"] | list[str] = Field(
        default="auto", description="'auto' = a few evenly spaced cut points per backbone."
    )
    layer_mode: Literal["best", "mean", "last"] | None = Field(
        default=None,
        description="How a backbone's layers become its one row: best layer, layer mean, last. Omitted: the "
                    "default ranking's fitted layer rule when 'aggregation' is 'default', else 'best'.")
    metrics: list[str] | None = Field(default=None, description="Default: chosen by task type from the registry.")
    similarity: bool | list[str] = Field(
        default=True,
        description="Domain similarity to each source's stored sample: true = the task type's default "
                    "distances (the cheap ones; GET /v1/metrics lists every metric of kind 'similarity' with "
                    "its defaults), a list names the distances to compute (the optimal-transport dataset "
                    "distance, which compares labelled samples and costs about as much as the rest of a "
                    "default job's metrics together, only when named), false = none.")
    probe: ProbeOptions | None = None
    aggregation: Literal["default", "rank_mean"] | dict[str, Annotated[float, Field(ge=0)]] = Field(
        default="default",
        description="'default': the newest fitted default ranking of the task type (its metrics, weights and "
                    "layer rule, fitted leave-one-target-out on measured fine-tunes; named in the job's "
                    "resolved request and in GET /v1/metrics); 'rank_mean': the mean of per-metric ranks; or "
                    "weights per metric (weighted mean of min-max normalised scores).")
    reference_backbone: str | None = None
    bootstrap: int = Field(default=30, ge=0, le=1000, description="Bootstrap replicates for rank CIs (0 = off).")
    subset_size: int = Field(default=3, ge=0, le=5, description="Largest multi-source subset (0 = off).")
    max_samples: int | None = Field(default=None, ge=10, description="Cap on target samples scored (stratified).")
    seed: int = Field(default=0, ge=0)

    @field_validator("backbones")
    @classmethod
    def _ids_unique(cls, value):
        if isinstance(value, list):
            if not value:
                raise ValueError("backbones must not be empty (omit it for every compatible backbone)")
            if len(set(value)) != len(value):
                raise ValueError("backbones lists an id twice")
        return value

    @model_validator(mode="after")
    def _metrics_unique(self) -> RankingCreate:
        if self.metrics is not None and (not self.metrics or len(set(self.metrics)) != len(self.metrics)):
            raise ValueError("metrics must be a non-empty list without repeats (omit it for the default set)")
        if isinstance(self.similarity, list) and (not self.similarity
                                                  or len(set(self.similarity)) != len(self.similarity)):
            raise ValueError("similarity must be true, false or a non-empty list of distances without repeats")
        return self


SIGNIFICANT_DIGITS = 6
"""Floats in ranking responses are rounded to this many significant digits (no ``5.274999999999999``)."""

AGGREGATE_SCALES = {
    "rank_mean": "-(mean rank over the metrics in the aggregate): -1 = ranked first by every metric, "
                 "-N = ranked last by every metric (N candidates); a layer's aggregate in 'layers' ranks that "
                 "backbone's layers against each other on the same scale (-1 = best layer on every metric).",
    "weighted": "weighted mean of the metrics' min-max normalised scores across candidates: 1 = best on "
                "every weighted metric, 0 = worst.",
    "rank_weighted": "the default ranking's weighted sum of normalised ranks (each metric's candidates ranked "
                     "0 = worst … 1 = best, ties averaged): 1 = best on every weighted metric, 0 = worst.",
    "zscore_weighted": "the default ranking's weighted sum of per-metric z-scores across candidates (clipped to "
                       "±3): 0 = average on every weighted metric, positive = better than the candidates' mean.",
}


def rounded(value: Any, digits: int = SIGNIFICANT_DIGITS) -> Any:
    """``value`` with every float (also inside dicts, lists and tuples) rounded to ``digits`` significant
    digits; non-finite floats become ``None`` (JSON has no NaN)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    return value


class Progress(BaseModel):
    stage: str | None = None
    done: int = 0
    total: int = 0
    eta_seconds: float | None = None
    stages: dict[str, Any] = Field(default_factory=dict)


class ProbeRunRead(BaseModel):
    """One probe run (arm × seed): what it scored on the held-out split and how it was trained."""

    arm: str
    seed: int
    rung_steps: int = Field(default=0, description="0: the job's full step budget; else the short budget of the "
                                                   "successive-halving rung the run belongs to.")
    metric: float | None = Field(default=None, description="The verdict's metric on the evaluation split.")
    metric_name: str | None = Field(default=None, examples=["accuracy", "r2"])
    scores: dict[str, Any] = Field(default_factory=dict, description="Every evaluation metric of the run.")
    lr: float | None = Field(default=None, description="Learning rate chosen on the inner validation split.")
    steps: int = Field(default=0, description="Optimisation steps run (all learning rates of the grid).")
    best_step: int | None = None
    timed_out: bool = Field(default=False, description="Stopped by the wall-clock cap (budget_seconds).")
    seconds: float = 0.0
    shared_from: str | None = Field(default=None, description="Scratch run shared with this backbone's twin.")

    @field_serializer("metric", "scores", "lr", "seconds")
    def _round(self, value: Any) -> Any:
        return rounded(value)


class ArmSummary(BaseModel):
    """Mean evaluation metric of one arm over its seeds."""

    mean: float | None = None
    n: int = 0
    timed_out: int = Field(default=0, description="Runs of this arm stopped by the wall-clock cap.")

    @field_serializer("mean")
    def _round(self, value: Any) -> Any:
        return rounded(value)


class VerdictRead(ReadModel):
    verdict: str
    delta_mean: float | None = Field(default=None, description="Mean paired Δ = fine-tune − scratch.")
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = Field(default=None, description="Holm-adjusted one-sided p-value.")
    n_seeds: int = 0
    text: str = ""
    arms: dict[str, ArmSummary] = Field(default_factory=dict,
                                        description="Per arm (finetune, scratch, linear…): mean metric over seeds.")
    runs: list[ProbeRunRead] = Field(default_factory=list, description="Every probe run behind the verdict.")
    details: dict[str, Any] = Field(default_factory=dict)

    @field_serializer("delta_mean", "ci_low", "ci_high", "p_value", "details")
    def _round(self, value: Any) -> Any:
        return rounded(value)


class RankingRow(BaseModel):
    """One candidate of a job: ranked, or ``failed`` (its embedding or scoring raised; ``error`` says why,
    and the job finished with the others)."""

    status: Literal["ranked", "failed"] = Field(default="ranked")
    error: str | None = Field(default=None, description="Why a failed candidate could not be ranked.")
    failed_stage: str | None = Field(default=None, description="The stage that failed: embed, score or rank.")
    rank: int | None = Field(default=None, description="1 = best; null for a failed candidate.")
    backbone_id: str
    best_layer: str | None = None
    aggregate: float | None = None
    rank_ci: tuple[float, float] | None = None
    p_top1: float | None = Field(default=None, description="Share of bootstrap replicates ranking it first.")
    scores: dict[str, Any] = Field(default_factory=dict, description="{metric: {raw, normalised}}")
    layers: dict[str, Any] = Field(default_factory=dict, description="Per-layer aggregate and metric values.")
    similarity: dict[str, Any] = Field(default_factory=dict)
    difficulty: dict[str, Any] = Field(default_factory=dict)
    baselines: dict[str, Any] = Field(default_factory=dict)
    flags: list[str] = Field(default_factory=list)
    verdict: VerdictRead | None = None

    @field_serializer("aggregate", "rank_ci", "p_top1", "scores", "layers", "similarity", "difficulty", "baselines")
    def _round(self, value: Any) -> Any:
        return rounded(value)


class AggregationRead(BaseModel):
    """How the table's ``aggregate`` column is computed, and the scale it is on."""

    method: str = Field(examples=["rank_weighted"])
    metrics: list[str] = Field(default_factory=list, description="The metrics that entered the aggregate.")
    weights: dict[str, float] | None = Field(default=None, description="Their weights (weighted methods).")
    scale: str = Field(description="What the numbers mean: best and worst possible values.")
    ranker: dict[str, Any] | None = Field(
        default=None, description="The fitted default ranking this job used (name, version, file digest, "
                                  "ground-truth digest, layer rule), when it used one.")
    note: str | None = Field(default=None, description="Why the aggregation is not the fitted default, if not.")


class SubsetRead(BaseModel):
    metric: str
    explanation: str | None = Field(default=None, description="How the subset was built and why it stopped.")
    steps: list[dict[str, Any]] = Field(description="Per step: backbone_id, score (of the subset so far), gain "
                                                    "(over the subset before it; null for the first), why.")
    cached: bool = Field(default=False, description="Read from the score cache: an earlier job computed this "
                                                    "subset from the same candidates, chosen layers and rows.")


class RankingRead(BaseModel):
    id: uuid.UUID
    status: JobStatus
    dataset_id: uuid.UUID | None
    request: dict[str, Any]
    progress: Progress
    error: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    table: list[RankingRow] = Field(default_factory=list)
    subset: SubsetRead | None = None
    aggregation: AggregationRead | None = Field(default=None, description="The aggregate column's method and scale.")
    target_difficulty: dict[str, Any] | None = None
    warnings: list[str] = Field(default_factory=list)
    plots: list[str] = Field(default_factory=list)
    planned: dict[str, Any] | None = Field(
        default=None,
        description="The work the job plans: units per stage (probe: the first round and the most the sequential "
                    "design can run) and, where this project has stored probe runs, an estimated probe time.")

    @field_serializer("target_difficulty")
    def _round(self, value: Any) -> Any:
        return rounded(value)


class RankingSummary(BaseModel):
    id: uuid.UUID
    status: JobStatus
    dataset_id: uuid.UUID | None
    created_at: datetime
    finished_at: datetime | None = None
    stage: str | None = None
    top_backbone: str | None = None
    backbones: list[str] = Field(default_factory=list)


class RankingPage(BaseModel):
    items: list[RankingSummary]
    total: int
    next_cursor: str | None = None


class BackboneRankingRead(BaseModel):
    """How one source did on one target (``aggregate`` on the scale of that job's ``aggregation``)."""

    job_id: uuid.UUID
    dataset_id: uuid.UUID | None
    rank: int
    of: int
    best_layer: str
    aggregate: float
    verdict: str | None = None
    created_at: datetime


class BackboneRankingPage(BaseModel):
    items: list[BackboneRankingRead]
    total: int
