"""Plain records of the sequential verdict: what a verdict says and what was run to reach it.

Only dataclasses live here (no statistics, no wording), so that ``wording`` can import them while
``record`` imports ``wording`` — the imports point one way (as ``paired`` does for ``verdict``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ArmSummary:
    """One arm of one candidate, over every seed it ran (counted as evidence or not).

    ``steps_run`` and ``budget_steps`` are per seed: the optimisation steps of the chosen learning rate
    and the steps it was given; a run with ``timed_out`` stopped on the wall clock before its budget.
    """

    arm: str
    seeds: list[int]
    metric_mean: float | None
    metric_sd: float | None
    metrics: dict[int, float | None]
    steps_run: dict[int, int]
    budget_steps: dict[int, int | None]
    learning_rates: dict[int, float | None]
    timed_out: list[int]
    seconds: float
    curves: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    shared_from: dict[int, str] = field(default_factory=dict)  # seed → the candidate whose run this is

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("metrics", "steps_run", "budget_steps", "learning_rates", "curves", "shared_from"):
            data[key] = {str(k): v for k, v in data[key].items()}  # JSON object keys are strings
        return data


@dataclass
class VerdictRecord:
    """One candidate's sequential verdict and everything that was run to reach it.

    The first eight fields map onto a ``verdicts`` row (see :meth:`row`); the rest is what the API
    serves in the row's details. ``p_value`` is the Holm-adjusted anytime-valid p-value of the claim the
    verdict makes (for ``inconclusive``: of the claim closest to being made). ``ci_low``/``ci_high`` are
    the confidence sequence at level α / m (``None`` while it is unbounded).
    """

    backbone_id: str
    verdict: str
    delta_mean: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n_seeds: int
    text: str
    stop_reason: str
    rounds: int
    seeds: list[int]
    metric_name: str
    arms: dict[str, ArmSummary]
    excluded_seeds: dict[int, str]
    warnings: list[str]
    p_holm: dict[str, float | None]
    stats: dict[str, Any]
    design: dict[str, Any]
    reason: str | None = None
    evidence: str = "finetune − scratch, paired by seed"
    decided_by: str | None = None  # "finetune" or "linear": whose paired evidence made the verdict
    #: under successive halving: the rung the verdict speaks for (rung_steps, budget_steps, full_steps) and
    #: every rung's decision; ``None`` without halving
    halving: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k not in ("arms", "excluded_seeds")}
        data["arms"] = {a: s.to_dict() for a, s in self.arms.items()}
        data["excluded_seeds"] = {str(k): v for k, v in self.excluded_seeds.items()}
        return data

    def row(self) -> dict[str, Any]:
        """The ``verdicts`` row's columns; ``details`` holds the rest of :meth:`to_dict`."""
        data = self.to_dict()
        cols = ("verdict", "delta_mean", "ci_low", "ci_high", "p_value", "n_seeds", "text")
        return {**{k: data[k] for k in cols},
                "details": {k: v for k, v in data.items() if k not in cols and k != "backbone_id"}}
