"""The recipe every arm of a probe shares: budget, optimiser grid, early stopping, and where it runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


class ProbeCancelled(Exception):
    """Raised at the next evaluation (every ``eval_every`` steps) once ``should_stop()`` returns true."""


@dataclass(frozen=True)
class ProbeBudget:
    """One recipe for all arms, so that the only difference between them is the initialisation.

    A *training run* is one learning rate of the grid for one arm × seed unit. ``steps`` optimisation
    steps are given to every training run (equal steps per arm); ``seconds`` caps the wall-clock time of
    every training run the same way — it is not shared among the grid's rates, so a unit with a grid of
    k rates may take up to k × ``seconds`` (plus evaluation). A run that hits the cap stops, keeps its best
    checkpoint and is flagged ``timed_out``; the unit is ``timed_out`` when any of its rates was
    (the choice of rate was then made on unequal footing).
    """

    steps: int = 300
    seconds: float | None = None
    batch_size: int = 32
    lr_grid: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    linear_lr_grid: tuple[float, ...] = (1e-3, 3e-3, 1e-2)
    weight_decay: float = 1e-4
    eval_every: int = 25
    patience: int = 4  # evaluations without improvement before stopping early
    val_fraction: float = 0.2
    max_samples: int | None = None  # per-seed stratified subset of the train split (None: all of it)
    eval_batch_size: int = 256
    metric: str | None = None  # None: accuracy (classification) or r2 (regression)
    amp: bool = True  # mixed precision on CUDA; ignored on CPU

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"budget {name} must be >= 1, got {getattr(self, name)!r}")
        if self.patience < 1:
            raise ValueError(f"budget patience must be >= 1, got {self.patience!r}")
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError(f"budget seconds must be > 0 or None, got {self.seconds!r}")
        for name in ("lr_grid", "linear_lr_grid"):
            grid = tuple(getattr(self, name))
            if not grid or any(not (lr > 0) for lr in grid):
                raise ValueError(f"budget {name} must be a non-empty tuple of positive rates, got {grid!r}")
            object.__setattr__(self, name, tuple(float(lr) for lr in grid))
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"budget val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if self.max_samples is not None and self.max_samples < 4:
            raise ValueError(f"budget max_samples must be >= 4 or None, got {self.max_samples!r}")
        if self.weight_decay < 0:
            raise ValueError(f"budget weight_decay must be >= 0, got {self.weight_decay!r}")

    def with_steps(self, steps: int) -> ProbeBudget:
        return replace(self, steps=int(steps))

    def grid(self, arm: str) -> tuple[float, ...]:
        return self.linear_lr_grid if arm == "linear" else self.lr_grid

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lr_grid"] = list(self.lr_grid)
        data["linear_lr_grid"] = list(self.linear_lr_grid)
        return data
