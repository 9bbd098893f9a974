"""The paired statistics of one candidate (Δ = fine-tune − scratch over paired seeds): the value type that
``verdict`` computes and ``wording`` describes — kept apart so that neither imports the other's module."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["PairedStats"]


@dataclass(frozen=True)
class PairedStats:
    """Δ = a − b over the seeds both arms completed."""

    seeds: tuple[int, ...]
    deltas: tuple[float, ...]
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    p_less: dict[str, float]  # H1: mean Δ < 0, per test ("wilcoxon", "t")
    p_greater: dict[str, float]  # H1: mean Δ > 0

    @property
    def n(self) -> int:
        return len(self.deltas)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seeds"], data["deltas"], data["n"] = list(self.seeds), list(self.deltas), self.n
        return data
