"""Successive halving over many candidate sources, so a probe over N sources costs a bounded multiple of
one fine-tune (Jamieson & Talwalkar, 2016; Li et al., Hyperband, 2018).

Rung r trains the survivors' ``finetune`` arm (and the ``scratch`` baseline) at ``steps_r``, budgets
growing by ``eta`` each rung up to the full budget; the top ``1/eta`` by mean validation metric go on.
The last rung runs the full set of arms. Scratch runs depend only on the architecture, the preprocessing,
the seed and the budget, so candidates sharing an architecture share them (``RunCache``). A candidate
dropped at a short rung keeps its paired finetune/scratch runs there: since short budgets favour
pretrained weights (He et al., 2019), a deficit found early is still evidence of negative transfer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from app.backbones.base import BackboneAdapter
from app.probes.budget import ProbeBudget
from app.probes.data import ProbeData
from app.probes.runner import DEFAULT_ARMS, ProbeResult, ReferenceArm, RunCache, run_probe


@dataclass(frozen=True)
class ProbeCandidate:
    """One source to probe: its adapter, the cut, and the target data as *its* preprocessing gives it."""

    adapter: BackboneAdapter
    layer: str
    data: ProbeData
    cached_embeddings: Any = None

    @property
    def id(self) -> str:
        return self.adapter.spec.id


@dataclass
class Rung:
    steps: int
    candidates: list[str]
    scores: dict[str, float | None]
    kept: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "candidates": self.candidates, "scores": self.scores, "kept": self.kept}


@dataclass
class HalvingResult:
    """Each candidate's runs at the last rung it reached, the rung history, and what it all cost."""

    results: dict[str, ProbeResult] = field(default_factory=dict)
    rungs: list[Rung] = field(default_factory=list)
    reached: dict[str, int] = field(default_factory=dict)
    trained_steps: int = 0  # optimisation steps actually trained (shared runs counted once)
    full_finetune_steps: int = 0  # one seed's fine-tune at the full budget over the LR grid

    @property
    def finalists(self) -> list[str]:
        return self.rungs[-1].candidates if self.rungs else []

    @property
    def cost_ratio(self) -> float:
        """Total training steps relative to a single full fine-tune of one candidate."""
        return self.trained_steps / self.full_finetune_steps if self.full_finetune_steps else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"results": {k: v.to_dict() for k, v in self.results.items()},
                "rungs": [r.to_dict() for r in self.rungs], "reached": self.reached,
                "trained_steps": self.trained_steps, "full_finetune_steps": self.full_finetune_steps,
                "cost_ratio": self.cost_ratio}


def rung_schedule(n_candidates: int, steps: int, *, eta: int = 2, min_steps: int = 1,
                  final_candidates: int = 1) -> list[tuple[int, int]]:
    """``[(steps, candidates), …]`` per rung: halve (by ``eta``) until ``final_candidates`` remain."""
    if n_candidates < 1 or final_candidates < 1 or eta < 2 or steps < 1 or min_steps < 1:
        raise ValueError(f"need n_candidates, final_candidates, steps, min_steps >= 1 and eta >= 2; got "
                         f"{n_candidates}, {final_candidates}, {steps}, {min_steps}, {eta}")
    counts = [n_candidates]
    while counts[-1] > final_candidates:
        counts.append(max(final_candidates, math.ceil(counts[-1] / eta)))
    last = len(counts) - 1
    return [(min(steps, max(min_steps, steps // eta ** (last - r))), c) for r, c in enumerate(counts)]


def successive_halving(candidates: Sequence[ProbeCandidate], *, seeds: int | Sequence[int] = 5,
                       budget: ProbeBudget | None = None, eta: int = 2, min_steps: int | None = None,
                       final_candidates: int = 1, final_arms: Sequence[str] = DEFAULT_ARMS,
                       device: str | torch.device | None = None, reference: ReferenceArm | None = None,
                       progress: Callable[[int, int], None] | None = None,
                       should_stop: Callable[[], bool] | None = None) -> HalvingResult:
    budget = budget or ProbeBudget()
    ids = [c.id for c in candidates]
    if not ids or len(set(ids)) != len(ids):
        raise ValueError(f"candidates must be non-empty with distinct backbone ids, got {ids!r}")
    if not {"finetune", "scratch"} <= set(final_arms):
        raise ValueError(f"final_arms must include 'finetune' and 'scratch' for a verdict, got {list(final_arms)!r}")
    n_seeds = seeds if isinstance(seeds, int) else len(seeds)
    schedule = rung_schedule(len(ids), budget.steps, eta=eta, min_steps=min_steps or budget.eval_every,
                             final_candidates=final_candidates)
    by_id = {c.id: c for c in candidates}
    cache = RunCache()
    out = HalvingResult(full_finetune_steps=budget.steps * len(budget.lr_grid))
    arms_at = [("finetune", "scratch")] * (len(schedule) - 1) + [tuple(final_arms)]
    total = sum(c * n_seeds * len(a) for (_, c), a in zip(schedule, arms_at, strict=True))
    done = 0
    survivors = list(ids)
    for r, (steps, _) in enumerate(schedule):
        rung_budget = budget.with_steps(steps)
        for cid in survivors:
            cand = by_id[cid]
            offset = done

            def report(k: int, _n: int, offset: int = offset) -> None:
                if progress is not None:
                    progress(offset + k, total)

            out.results[cid] = run_probe(
                cand.adapter, cand.layer, cand.data, arms=arms_at[r], seeds=seeds, budget=rung_budget,
                device=device, cached_embeddings=cand.cached_embeddings,
                reference=reference if r == len(schedule) - 1 else None, shared=cache, progress=report,
                should_stop=should_stop)
            out.reached[cid] = steps
            out.trained_steps += sum(run.details["total_steps"] for run in out.results[cid].runs
                                     if "shared_from" not in run.details)
            done += n_seeds * len(arms_at[r])
        scores = {cid: _mean(out.results[cid].metrics("finetune").values()) for cid in survivors}
        kept = survivors
        if r < len(schedule) - 1:
            ranked = sorted(survivors, key=lambda c: np.inf if scores[c] is None else -scores[c])
            kept = ranked[:schedule[r + 1][1]]
        out.rungs.append(Rung(steps, list(survivors), scores, list(kept)))
        survivors = kept
    if progress is not None:
        progress(total, total)
    return out


def _mean(values) -> float | None:
    vals = [float(v) for v in values]
    return float(np.mean(vals)) if vals else None
