"""The inner loop shared by every arm: train one learning rate with early stopping, record the curve.

Kept apart from the runner so the arms differ only in what they hand in (a trunk + head, or a head over
frozen features) and never in how they are trained.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from app.devices import autocast as autocast_context
from app.probes.budget import ProbeBudget, ProbeCancelled
from app.probes.evaluation import scores


@dataclass
class Feeder:
    """Where batches come from: ``fetch(rows)`` returns model input on the device for data rows."""

    fetch: Callable[[np.ndarray], Any]
    targets: Callable[[np.ndarray], torch.Tensor]


@dataclass
class Objective:
    """Loss and scoring for one task; regression targets are standardised on the inner train part."""

    task_type: str
    metric: str
    y_mean: torch.Tensor | None = None
    y_std: torch.Tensor | None = None

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = out.float()
        if self.task_type == "classification":
            return nn.functional.cross_entropy(out, y)
        return nn.functional.mse_loss(out, (y - self.y_mean) / self.y_std)

    def predict(self, out: torch.Tensor) -> np.ndarray:
        out = out.float()
        if self.task_type == "classification":
            return out.argmax(dim=1).cpu().numpy()
        return (out * self.y_std + self.y_mean).cpu().numpy()

    def to(self, device: torch.device) -> Objective:
        if self.y_mean is not None:
            self.y_mean, self.y_std = self.y_mean.to(device), self.y_std.to(device)
        return self


@dataclass
class LrRun:
    """One learning rate of the grid, trained until its budget, its deadline or early stopping."""

    lr: float
    best_metric: float | None = None
    best_step: int = 0
    best_scores: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    timed_out: bool = False
    stopped_early: bool = False
    diverged: bool = False
    curve: list[dict[str, Any]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None

    def summary(self) -> dict[str, Any]:
        return {"lr": self.lr, "best_metric": self.best_metric, "best_step": self.best_step,
                "steps": self.steps, "seconds": round(self.seconds, 4), "timed_out": self.timed_out,
                "stopped_early": self.stopped_early, "diverged": self.diverged}


def evaluate(model: nn.Module, feeder: Feeder, rows: np.ndarray, objective: Objective, *,
             batch_size: int, autocast: Callable[[], Any]) -> dict[str, float]:
    model.eval()
    preds = []
    with torch.no_grad(), autocast():
        for start in range(0, len(rows), batch_size):
            preds.append(objective.predict(model(feeder.fetch(rows[start:start + batch_size]))))
    y_true = feeder.targets(rows).numpy()
    return scores(objective.task_type, y_true, np.concatenate(preds))


def train_lr(model: nn.Module, params: list[nn.Parameter], feeder: Feeder, objective: Objective, *,
             train_rows: np.ndarray, val_rows: np.ndarray, plan: list[np.ndarray], lr: float,
             budget: ProbeBudget, device: torch.device, amp_dtype: torch.dtype | None, deadline: float | None,
             keep_state: bool, should_stop: Callable[[], bool] | None) -> LrRun:
    """Train ``params`` of ``model`` at ``lr`` over ``plan``; keep the best checkpoint on the inner val."""
    run = LrRun(lr=lr)
    started = time.perf_counter()
    autocast = autocast_context(device, amp_dtype)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=budget.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    bad_evals = 0
    losses: list[torch.Tensor] = []

    def checkpoint(step: int) -> bool:
        """Evaluate, extend the curve, and say whether early stopping fires."""
        nonlocal bad_evals
        if should_stop is not None and should_stop():
            raise ProbeCancelled("probe cancelled by the caller")
        # losses stay on the device between evaluations: one host sync per evaluation, not per step
        train_loss = float(torch.stack(losses).float().mean()) if losses else None
        losses.clear()
        if train_loss is not None and not math.isfinite(train_loss):
            run.diverged = True
            return True
        result = evaluate(model, feeder, val_rows, objective, batch_size=budget.eval_batch_size, autocast=autocast)
        value = result[objective.metric]
        finite = math.isfinite(value)  # NaN predictions score NaN: never a best, never stored as NaN
        run.curve.append({"step": step, "train_loss": train_loss, "val_metric": value if finite else None})
        if finite and (run.best_metric is None or value > run.best_metric):
            run.best_metric, run.best_step, run.best_scores = value, step, result
            bad_evals = 0
            if keep_state:
                run.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            return False
        bad_evals += 1
        return bad_evals >= budget.patience

    checkpoint(0)
    for step, positions in enumerate(plan, start=1):
        model.train()
        rows = train_rows[positions]
        x, y = feeder.fetch(rows), feeder.targets(rows).to(device, non_blocking=True)
        with autocast():
            loss = objective.loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.detach())
        run.steps = step
        out_of_time = deadline is not None and time.perf_counter() >= deadline
        due = step % budget.eval_every == 0 or step == len(plan) or out_of_time
        if due and checkpoint(step):
            run.stopped_early = step < len(plan) and not run.diverged
            break
        if out_of_time:
            run.timed_out = step < len(plan)
            break
    run.seconds = time.perf_counter() - started
    return run


def fresh_copy(module: nn.Module, device: torch.device) -> nn.Module:
    """An independent copy on ``device``: the template (and the adapter's own weights) stay untouched."""
    return copy.deepcopy(module).to(device)
