"""Probe fine-tunes: the arms of one candidate, trained on identical data, order and head per seed.

Arms (``app.enums.ProbeArm``):

``finetune``   the pretrained trunk up to the cut plus a new head, all trained;
``linear``     the pretrained trunk frozen, only the head trained (on cached embeddings when given);
``scratch``    the same architecture freshly initialised, same recipe and budget — the baseline of Wang et
               al. (CVPR 2019): negative transfer is ``finetune`` doing worse than this;
``reference``  a caller-named reference backbone fine-tuned the same way, to catch relative negative
               transfer.

A seed fixes the data subset, the inner split, the batch order and the head initialisation; every arm of
that seed shares them (``details.data_digest`` and ``details.head_digest`` prove it). On CPU the same seed
gives the same numbers. :func:`run_arm` is one (arm, seed) unit — what a distributed executor schedules;
:func:`run_probe` runs all units of one candidate. Pure domain code: no web, no database, no Ray.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from app.backbones.base import BackboneAdapter, BackboneId
from app.devices import autocast as autocast_factory
from app.devices import autocast_dtype, resolve_device
from app.enums import ProbeArm
from app.probes.budget import ProbeBudget
from app.probes.data import ProbeData, SeedSplit, to_device
from app.probes.evaluation import primary_metric
from app.probes.training import Feeder, LrRun, Objective, evaluate, fresh_copy, train_lr

DEFAULT_ARMS = (ProbeArm.finetune.value, ProbeArm.linear.value, ProbeArm.scratch.value)


@dataclass
class ArmRun:
    """One unit's outcome — maps onto a ``probe_runs`` row (job × backbone × arm × seed)."""

    backbone_id: str
    layer: str
    arm: str
    seed: int
    metric: float | None
    steps: int
    seconds: float
    curve: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArmRun:
        return cls(**{k: data[k] for k in ("backbone_id", "layer", "arm", "seed", "metric", "steps", "seconds")},
                   curve=list(data.get("curve") or []), details=dict(data.get("details") or {}))


@dataclass
class ProbeResult:
    """All units of one candidate: the verdict reads ``by_arm()``."""

    backbone_id: str
    layer: str
    task_type: str
    metric_name: str
    runs: list[ArmRun] = field(default_factory=list)

    def metrics(self, arm: str) -> dict[int, float]:
        return {r.seed: r.metric for r in self.runs if r.arm == arm and r.metric is not None}

    def by_arm(self) -> dict[str, dict[int, float]]:
        return {arm: self.metrics(arm) for arm in dict.fromkeys(r.arm for r in self.runs)}

    @property
    def budget_steps(self) -> int | None:
        steps = [r.details.get("budget", {}).get("steps") for r in self.runs]
        return max((s for s in steps if s is not None), default=None)

    def to_dict(self) -> dict[str, Any]:
        return {"backbone_id": self.backbone_id, "layer": self.layer, "task_type": self.task_type,
                "metric_name": self.metric_name, "runs": [r.to_dict() for r in self.runs]}


@dataclass(frozen=True)
class ReferenceArm:
    """The backbone the ``reference`` arm fine-tunes; ``data`` when its preprocessing differs."""

    adapter: BackboneAdapter
    layer: str
    data: ProbeData | None = None


class RunCache:
    """Shares runs that do not depend on the candidate — scratch per architecture, the reference — across
    the candidates of one job (one target dataset). Keys include the budget and the seed."""

    def __init__(self) -> None:
        self._runs: dict[Hashable, ArmRun] = {}
        self.hits = 0

    def get_or_run(self, key: Hashable, backbone_id: str, fn: Callable[[], ArmRun]) -> ArmRun:
        if key in self._runs:
            self.hits += 1
            first = self._runs[key]
            return replace(first, backbone_id=backbone_id,
                           details={**first.details, "shared_from": first.backbone_id})
        run = fn()
        self._runs[key] = run
        return run

    def __len__(self) -> int:
        return len(self._runs)


def arch_key(adapter: BackboneAdapter) -> str:
    """Which candidates can share a scratch baseline: same architecture *and* same preprocessing."""
    spec = adapter.spec
    arch = spec.extra.get("arch")
    if not arch:
        try:
            bid = BackboneId.parse(spec.id)
            arch = f"{bid.family}:{bid.arch}"
        except ValueError:
            arch = spec.id
    if not isinstance(arch, str):  # a card's arch table: order-independent, so equal tables match
        arch = json.dumps(arch, sort_keys=True, default=str)
    return f"{arch}|{spec.preprocessing!r}"


class _ProbeModel(nn.Module):
    def __init__(self, trunk: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = head

    def forward(self, x: Any) -> torch.Tensor:
        feats = self.trunk(x)
        if feats.ndim != 2 or feats.shape[1] != self.head.in_features:
            raise ValueError(f"trunk returned features of shape {tuple(feats.shape)}, "
                             f"expected (n, {self.head.in_features}) as the layer spec says")
        return self.head(feats)


def make_head(dim: int, out_dim: int, seed: int) -> nn.Linear:
    """The new head, initialised from the seed alone (PyTorch's default bounds), identical across arms."""
    gen = torch.Generator().manual_seed(int(seed) * 7919 + 2)
    head = nn.Linear(dim, out_dim)
    bound = 1.0 / math.sqrt(dim)
    with torch.no_grad():
        head.weight.uniform_(-bound, bound, generator=gen)
        head.bias.uniform_(-bound, bound, generator=gen)
    return head


def frozen_features(adapter: BackboneAdapter, layer: str, data: ProbeData, *, device: str | torch.device | None = None,
                    rows: np.ndarray | None = None, batch_size: int = 256, amp: bool = True) -> torch.Tensor:
    """Pooled features ``(len(data), dim)`` of the pretrained trunk in inference mode (rows not asked for
    stay zero) — what the ``linear`` arm trains on when no cached embeddings are given."""
    dev = resolve_device(device)
    dim = adapter.spec.layer(layer).dim
    rows = np.arange(len(data)) if rows is None else np.unique(rows)
    trunk = adapter.trunk(layer, pretrained=True, seed=0).to(dev).eval()
    autocast = autocast_factory(dev, autocast_dtype(dev, amp))
    out = torch.zeros(len(data), dim)
    with torch.no_grad(), autocast():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            out[torch.as_tensor(chunk)] = trunk(to_device(data.batch(chunk, adapter.collate), dev)).float().cpu()
    return out


def run_arm(adapter: BackboneAdapter, layer: str, data: ProbeData, arm: str, seed: int, *,
            budget: ProbeBudget, device: str | torch.device | None = None,
            cached_embeddings: torch.Tensor | np.ndarray | None = None, eval_data: ProbeData | None = None,
            backbone_id: str | None = None, should_stop: Callable[[], bool] | None = None) -> ArmRun:
    """Train and evaluate ONE (arm, seed) unit. For ``reference``, ``adapter`` is the reference backbone
    and ``backbone_id`` the candidate the row belongs to. Raises ``ProbeCancelled`` when told to stop."""
    arm = ProbeArm(arm).value
    dev = resolve_device(device)
    metric = primary_metric(data.task_type, budget.metric)
    dim = adapter.spec.layer(layer).dim
    amp_dtype = autocast_dtype(dev, budget.amp)
    split = data.split(seed, val_fraction=budget.val_fraction, max_samples=budget.max_samples)
    if arm != ProbeArm.linear.value or cached_embeddings is None:
        data.prepare(np.concatenate([split.train, split.val]))  # decoding is not training: off the clock
    started = time.perf_counter()
    plan = ProbeData.batch_plan(len(split.train), budget.steps, budget.batch_size, seed)
    head = make_head(dim, data.out_dim, seed)
    objective = _objective(data, split, metric).to(dev)

    if arm == ProbeArm.linear.value:
        feats = _linear_features(adapter, layer, data, split, cached_embeddings, dev, budget).to(dev)
        template: nn.Module = head
        feeder = Feeder(fetch=lambda rows: feats[torch.as_tensor(rows, device=dev)], targets=data.targets)
    else:
        trunk = adapter.trunk(layer, pretrained=arm != ProbeArm.scratch.value, seed=seed)
        template = _ProbeModel(trunk, head)
        feeder = Feeder(fetch=lambda rows: to_device(data.batch(rows, adapter.collate), dev), targets=data.targets)

    runs: list[LrRun] = []
    grid = budget.grid(arm)
    for lr in grid:
        model = fresh_copy(template, dev)
        # budget.seconds caps each training run (one rate of the grid), exactly like budget.steps: every
        # rate gets the whole cap, so a longer grid never shortens the runs it holds
        deadline = None if budget.seconds is None else time.perf_counter() + budget.seconds
        with torch.random.fork_rng(devices=_rng_devices(dev)):
            torch.manual_seed(seed)  # dropout and other in-model randomness: same per seed and rate
            runs.append(train_lr(model, list(model.parameters()), feeder, objective, train_rows=split.train,
                                 val_rows=split.val, plan=plan, lr=lr, budget=budget, device=dev,
                                 amp_dtype=amp_dtype, deadline=deadline, keep_state=eval_data is not None,
                                 should_stop=should_stop))
    scored = [r for r in runs if r.best_metric is not None]
    best = max(scored, key=lambda r: r.best_metric) if scored else runs[0]
    value, result, metric_split = best.best_metric, dict(best.best_scores), "inner_val"
    if eval_data is not None and best.best_state is not None:
        result = _evaluate_on(eval_data, adapter, layer, arm, template, best, objective, dev, budget, amp_dtype)
        value, metric_split = result[metric], "eval"

    details = {
        "metric_name": metric, "metric_split": metric_split, "scores": result, "lr": best.lr,
        "best_step": best.best_step, "lr_search": [r.summary() for r in runs],
        "timed_out": any(r.timed_out for r in runs), "timed_out_lrs": [r.lr for r in runs if r.timed_out],
        "total_steps": sum(r.steps for r in runs),
        "val_auc": _curve_area(best.curve), "n_train": int(len(split.train)), "n_val": int(len(split.val)),
        "data_digest": split.digest, "head_digest": _digest(head), "task_type": data.task_type,
        "trained_backbone": adapter.spec.id, "arch_key": arch_key(adapter), "device": str(dev),
        "amp": str(amp_dtype).removeprefix("torch.") if amp_dtype else None, "budget": budget.to_dict(),
    }
    return ArmRun(backbone_id=backbone_id or adapter.spec.id, layer=layer, arm=arm, seed=int(seed),
                  metric=value, steps=best.steps, seconds=round(time.perf_counter() - started, 4),
                  curve=best.curve, details=details)


def run_probe(adapter: BackboneAdapter, layer: str, train_data: Any, labels: Any = None, *,
              arms: Sequence[str] = DEFAULT_ARMS, seeds: int | Sequence[int] = 5,
              budget: ProbeBudget | None = None, task_type: str = "classification",
              device: str | torch.device | None = None, cached_embeddings: torch.Tensor | np.ndarray | None = None,
              reference: ReferenceArm | None = None, eval_data: Any = None, eval_labels: Any = None,
              num_classes: int | None = None, shared: RunCache | None = None,
              progress: Callable[[int, int], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> ProbeResult:
    """Every (seed, arm) unit of one candidate, seed by seed so complete pairs land first.

    ``train_data``/``labels``: the target train split (see :class:`ProbeData`; a ``ProbeData`` may be
    passed alone). ``eval_data``/``eval_labels``: an optional held-out set to report on instead of the
    inner validation split. ``shared``: a :class:`RunCache` reused across the candidates of one job.
    """
    budget = budget or ProbeBudget()
    arms = [ProbeArm(a).value for a in arms]
    if not arms or len(set(arms)) != len(arms):
        raise ValueError(f"arms must be distinct and non-empty, got {arms!r}")
    if ProbeArm.reference.value in arms and reference is None:
        raise ValueError("the 'reference' arm needs reference=ReferenceArm(adapter, layer)")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise ValueError(f"seeds must be a positive count or distinct integers, got {seeds!r}")
    data = _as_data(train_data, labels, task_type, num_classes)
    held_out = _as_data(eval_data, eval_labels, data.task_type, data.num_classes) if eval_data is not None else None
    if reference is not None and reference.data is not None and (
            len(reference.data) != len(data) or not np.array_equal(reference.data.labels, data.labels)):
        raise ValueError("reference.data must hold the same rows and labels as train_data (the pairing needs it)")
    dev = resolve_device(device)
    candidate = adapter.spec.id
    if ProbeArm.linear.value in arms and cached_embeddings is None:
        rows = np.concatenate([np.concatenate([s.train, s.val]) for s in (
            data.split(seed, val_fraction=budget.val_fraction, max_samples=budget.max_samples) for seed in seed_list)])
        cached_embeddings = frozen_features(adapter, layer, data, device=dev, rows=rows,
                                            batch_size=budget.eval_batch_size, amp=budget.amp)
    result = ProbeResult(candidate, layer, data.task_type, primary_metric(data.task_type, budget.metric))
    total, done = len(seed_list) * len(arms), 0
    for seed in seed_list:
        for arm in arms:
            def unit(arm: str = arm, seed: int = seed) -> ArmRun:
                if arm == ProbeArm.reference.value:
                    return run_arm(reference.adapter, reference.layer, reference.data or data, arm, seed,
                                   budget=budget, device=dev, eval_data=held_out, backbone_id=candidate,
                                   should_stop=should_stop)
                return run_arm(adapter, layer, data, arm, seed, budget=budget, device=dev, eval_data=held_out,
                               cached_embeddings=cached_embeddings if arm == ProbeArm.linear.value else None,
                               should_stop=should_stop)
            key = _shared_key(arm, adapter, layer, reference, seed, budget)
            run = shared.get_or_run(key, candidate, unit) if shared is not None and key else unit()
            result.runs.append(run)
            done += 1
            if progress is not None:
                progress(done, total)
    return result


def _rng_devices(dev: torch.device) -> list[int]:
    if dev.type != "cuda":
        return []
    return [dev.index if dev.index is not None else torch.cuda.current_device()]


def _as_data(samples: Any, labels: Any, task_type: str, num_classes: int | None) -> ProbeData:
    if isinstance(samples, ProbeData):
        if labels is not None:
            raise ValueError("pass labels only with raw samples, not with a ProbeData")
        return samples
    if labels is None:
        raise ValueError("labels are required with raw samples")
    return ProbeData(samples, labels, task_type=task_type, num_classes=num_classes)


def _shared_key(arm: str, adapter: BackboneAdapter, layer: str, reference: ReferenceArm | None, seed: int,
                budget: ProbeBudget) -> Hashable | None:
    if arm == ProbeArm.scratch.value:
        return ("scratch", arch_key(adapter), layer, seed, budget)
    if arm == ProbeArm.reference.value and reference is not None:
        return ("reference", reference.adapter.spec.id, reference.layer, seed, budget)
    return None


def _objective(data: ProbeData, split: SeedSplit, metric: str) -> Objective:
    if data.task_type == "classification":
        return Objective("classification", metric)
    y = torch.from_numpy(data.labels[split.train]).float()
    std = y.std(dim=0, unbiased=False)
    return Objective("regression", metric, y_mean=y.mean(dim=0), y_std=torch.where(std > 0, std, torch.ones_like(std)))


def _linear_features(adapter: BackboneAdapter, layer: str, data: ProbeData, split: SeedSplit,
                     cached: torch.Tensor | np.ndarray | None, dev: torch.device, budget: ProbeBudget) -> torch.Tensor:
    dim = adapter.spec.layer(layer).dim
    if cached is None:
        return frozen_features(adapter, layer, data, device=dev, rows=np.concatenate([split.train, split.val]),
                               batch_size=budget.eval_batch_size, amp=budget.amp)
    feats = torch.as_tensor(np.asarray(cached) if not isinstance(cached, torch.Tensor) else cached).float()
    if feats.shape != (len(data), dim):
        raise ValueError(f"cached embeddings have shape {tuple(feats.shape)}, expected ({len(data)}, {dim}) "
                         f"for layer {layer!r} of {adapter.spec.id}")
    return feats


def _evaluate_on(eval_data: ProbeData, adapter: BackboneAdapter, layer: str, arm: str, template: nn.Module,
                 best: LrRun, objective: Objective, dev: torch.device, budget: ProbeBudget,
                 amp_dtype: torch.dtype | None) -> dict[str, float]:
    model = fresh_copy(template, dev)
    model.load_state_dict(best.best_state)
    rows = np.arange(len(eval_data))
    if arm == ProbeArm.linear.value:
        feats = frozen_features(adapter, layer, eval_data, device=dev, batch_size=budget.eval_batch_size,
                                amp=budget.amp)
        feeder = Feeder(fetch=lambda r: feats[torch.as_tensor(r)].to(dev), targets=eval_data.targets)
    else:
        feeder = Feeder(fetch=lambda r: to_device(eval_data.batch(r, adapter.collate), dev),
                        targets=eval_data.targets)
    return evaluate(model, feeder, rows, objective, batch_size=budget.eval_batch_size,
                    autocast=autocast_factory(dev, amp_dtype))


def _curve_area(curve: list[dict[str, Any]]) -> float | None:
    """Normalised area under the validation curve (trapezoids over steps): rewards fast learners."""
    pts = [(c["step"], c["val_metric"]) for c in curve if c["val_metric"] is not None]
    if len(pts) < 2 or pts[-1][0] == pts[0][0]:
        return pts[0][1] if pts else None
    steps, vals = np.array(pts, dtype=float).T
    return float(np.sum((vals[1:] + vals[:-1]) / 2 * np.diff(steps)) / (steps[-1] - steps[0]))


def _digest(head: nn.Linear) -> str:
    return hashlib.sha1(head.weight.detach().numpy().tobytes() + head.bias.detach().numpy().tobytes()).hexdigest()[:16]
