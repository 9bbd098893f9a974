"""Successive halving over many candidate sources, fitted to the sequential verdict: abandon hopeless
fine-tunes early, so a probe over N sources costs a bounded multiple of one fine-tune (Jamieson &
Talwalkar, 2016; Li et al., Hyperband, 2018).

Rung r trains the survivors' ``finetune`` arm and the ``scratch`` baseline at ``steps_r``, budgets
growing by ``eta`` each rung up to the full budget. At a short rung each survivor gets the design's first
round of paired seeds; :func:`halving_step` then stops those whose negative transfer is already settled
(short budgets favour pretrained weights — He et al., 2019 — so a deficit found early is strong
evidence) and promotes the top ``1/eta`` of the rest by mean fine-tune metric; the others are
*abandoned*: their verdict is the short rung's, and its record says so. The last rung runs the full
sequential design (rounds until settled, ``max_seeds``, the time budget). Scratch runs depend only on the
architecture, the preprocessing, the seed and the budget, so candidates sharing an architecture share
them (``RunCache``).

Each (candidate, rung) is its own Δ — the effect of the weights at that budget — so the Holm family is
candidates × rungs (``family_size``), fixed before anything runs: every verdict, from whichever rung,
keeps the family-wise error control of ``sequential``.

:func:`halving_step` is the decision alone (what the ranking job calls between its own rounds);
:func:`successive_halving` drives ``run_probe`` with it in one process (tests, benchmarks).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from app.backbones.base import BackboneAdapter
from app.probes.budget import ProbeBudget
from app.probes.data import ProbeData
from app.probes.record import as_run, paired_evidence, verdict_records
from app.probes.runner import DEFAULT_ARMS, ArmRun, ProbeResult, ReferenceArm, RunCache, run_probe
from app.probes.sequential import CandidateLook, SequentialDesign, look
from app.probes.types import VerdictRecord


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
    """One rung's decision: who ran at ``steps``, their mean fine-tune metric, who goes on, who stopped."""

    steps: int
    candidates: list[str]
    scores: dict[str, float | None]
    kept: list[str]
    stopped: dict[str, str] = field(default_factory=dict)  # backbone id → "settled" | "abandoned" | …

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "candidates": self.candidates, "scores": self.scores, "kept": self.kept,
                "stopped": self.stopped}


@dataclass
class HalvingResult:
    """Each candidate's runs and verdict record at the last rung it reached, the rungs, and the cost."""

    results: dict[str, ProbeResult] = field(default_factory=dict)
    records: dict[str, VerdictRecord] = field(default_factory=dict)
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
                "records": {k: v.to_dict() for k, v in self.records.items()},
                "rungs": [r.to_dict() for r in self.rungs], "reached": self.reached,
                "trained_steps": self.trained_steps, "full_finetune_steps": self.full_finetune_steps,
                "cost_ratio": self.cost_ratio}


def rung_schedule(n_candidates: int, steps: int, *, eta: int = 2, min_steps: int = 1,
                  final_candidates: int = 1) -> list[tuple[int, int]]:
    """``[(steps, candidates), …]`` per rung: halve (by ``eta``) until ``final_candidates`` remain.

    Budgets strictly grow: rungs that ``min_steps`` pushes to one budget would train the same runs again,
    so the first of them keeps the next distinct budget's share instead (a harder cut); when ``min_steps``
    reaches the full budget there is one rung, every candidate at ``steps``."""
    if n_candidates < 1 or final_candidates < 1 or eta < 2 or steps < 1 or min_steps < 1:
        raise ValueError(f"need n_candidates, final_candidates, steps, min_steps >= 1 and eta >= 2; got "
                         f"{n_candidates}, {final_candidates}, {steps}, {min_steps}, {eta}")
    counts = [n_candidates]
    while counts[-1] > final_candidates:
        counts.append(max(final_candidates, math.ceil(counts[-1] / eta)))
    last = len(counts) - 1
    rungs = [(min(steps, max(min_steps, steps // eta ** (last - r))), c) for r, c in enumerate(counts)]
    out = [rungs[0]]
    for budget, count in rungs[1:]:
        if budget > out[-1][0]:
            out.append((budget, count))
    if len(out) == 1:
        return [(steps, n_candidates)]
    out[-1] = (steps, counts[-1])
    return out


def halving_step(looks: Mapping[str, CandidateLook], finetune_means: Mapping[str, float | None], *,
                 keep: int, steps: int) -> Rung:
    """The decision after a short rung's round: who is promoted to the next (longer) budget.

    Parameters
    ----------
    looks : mapping backbone id → CandidateLook
        ``sequential.look`` over this rung's candidates (with ``family_size`` = candidates × rungs).
    finetune_means : mapping backbone id → mean fine-tune metric at this rung (``None`` if none finished)
    keep : int
        How many candidates the next rung holds (``rung_schedule``).
    steps : int
        This rung's step budget (recorded).

    Returns
    -------
    Rung
        ``kept``: the promoted, best mean fine-tune metric first. ``stopped``: ``"settled"`` for a
        negative transfer already settled at this budget (strong evidence: short budgets favour the
        pretrained arm), ``"abandoned"`` for the rest that did not make the cut. Positive or no-benefit
        verdicts are *not* final at a short budget (weak evidence), so those candidates compete on their
        fine-tune metric like the inconclusive ones.
    """
    ids = list(looks)
    if set(finetune_means) != set(ids):
        raise ValueError("finetune_means must name exactly the candidates of looks")
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep!r}")
    stopped = {cid: "settled" for cid in ids if looks[cid].verdict.value == "negative_transfer"}
    rest = [cid for cid in ids if cid not in stopped]
    ranked = sorted(rest, key=lambda c: -np.inf if finetune_means[c] is None else finetune_means[c], reverse=True)
    kept = ranked[:keep]
    stopped.update({cid: "abandoned" for cid in ranked[keep:]})
    return Rung(int(steps), ids, {c: finetune_means[c] for c in ids}, kept, stopped)


def successive_halving(candidates: Sequence[ProbeCandidate], *, design: SequentialDesign | None = None,
                       budget: ProbeBudget | None = None, eta: int = 2, min_steps: int | None = None,
                       final_candidates: int = 1, final_arms: Sequence[str] = DEFAULT_ARMS,
                       device: str | torch.device | None = None, reference: ReferenceArm | None = None,
                       progress: Callable[[int, int], None] | None = None,
                       should_stop: Callable[[], bool] | None = None) -> HalvingResult:
    """Successive halving with sequential seeds, in one process (see the module docstring).

    Short rungs run the design's first round (finetune and scratch); the last rung runs ``final_arms``
    in rounds until each finalist settles or reaches ``design.max_seeds``. ``progress(done, total)``
    counts units; ``total`` grows when the last rung adds rounds.
    """
    design = design or SequentialDesign()
    budget = budget or ProbeBudget()
    ids = [c.id for c in candidates]
    if not ids or len(set(ids)) != len(ids):
        raise ValueError(f"candidates must be non-empty with distinct backbone ids, got {ids!r}")
    if not {"finetune", "scratch"} <= set(final_arms):
        raise ValueError(f"final_arms must include 'finetune' and 'scratch' for a verdict, got {list(final_arms)!r}")
    schedule = rung_schedule(len(ids), budget.steps, eta=eta, min_steps=min_steps or budget.eval_every,
                             final_candidates=final_candidates)
    family = len(ids) * len(schedule)
    by_id = {c.id: c for c in candidates}
    cache = RunCache()
    out = HalvingResult(full_finetune_steps=budget.steps * len(budget.lr_grid))
    planned = sum(count * design.first_round * 2 for _, count in schedule[:-1])
    counter = {"done": 0, "total": planned + schedule[-1][1] * design.first_round * len(final_arms)}
    survivors = list(ids)
    for r, (steps, _) in enumerate(schedule):
        final = r == len(schedule) - 1
        arms = tuple(final_arms) if final else ("finetune", "scratch")
        rung_budget = budget.with_steps(steps)
        runs: dict[str, list[ArmRun]] = {cid: [] for cid in survivors}
        rounds = dict.fromkeys(survivors, 0)
        stopped: dict[str, str] = {}
        pending = {cid: design.next_seeds(0) for cid in survivors}
        while pending:
            for cid, seeds in pending.items():
                if counter["done"] + len(seeds) * len(arms) > counter["total"]:
                    counter["total"] = counter["done"] + len(seeds) * len(arms)
                res = _run(by_id[cid], arms, seeds, rung_budget, device, reference if final else None, cache,
                           counter, progress, should_stop)
                runs[cid].extend(res.runs)
                rounds[cid] += 1
                out.results[cid] = ProbeResult(res.backbone_id, res.layer, res.task_type, res.metric_name,
                                               list(runs[cid]))
                out.trained_steps += sum(run.details["total_steps"] for run in res.runs
                                         if "shared_from" not in run.details)
            looks = look({cid: paired_evidence(runs[cid])[0] for cid in survivors}, design, stopped=stopped,
                         attempted={cid: {x.seed for x in runs[cid]} for cid in survivors}, family_size=family)
            for cid, lk in looks.items():
                if lk.settled and cid not in stopped:
                    stopped[cid] = lk.action
            pending = {cid: lk.next_seeds for cid, lk in looks.items() if final and lk.action == "continue"}
        for cid in survivors:
            out.reached[cid] = steps
        if final:
            rung = Rung(steps, list(survivors), arm_means(runs), list(survivors), dict(stopped))
            done = survivors
        else:
            rung = halving_step(looks, arm_means(runs), keep=schedule[r + 1][1], steps=steps)
            done = list(rung.stopped)
            stopped = dict(rung.stopped)
        recs = verdict_records(runs, design, rounds=rounds, stopped=stopped, family_size=family)
        out.records.update({rec.backbone_id: rec for rec in recs if rec.backbone_id in done})
        out.rungs.append(rung)
        survivors = rung.kept if not final else survivors
    if progress is not None:
        progress(counter["total"], counter["total"])
    return out


def _run(cand: ProbeCandidate, arms: Sequence[str], seeds: list[int], budget: ProbeBudget,
         device: str | torch.device | None, reference: ReferenceArm | None, cache: RunCache,
         counter: dict[str, int], progress: Callable[[int, int], None] | None,
         should_stop: Callable[[], bool] | None) -> ProbeResult:
    offset = counter["done"]

    def report(k: int, _n: int) -> None:
        if progress is not None:
            progress(offset + k, counter["total"])

    res = run_probe(cand.adapter, cand.layer, cand.data, arms=arms, seeds=seeds, budget=budget, device=device,
                    cached_embeddings=cand.cached_embeddings,
                    reference=reference if "reference" in arms else None, shared=cache, progress=report,
                    should_stop=should_stop)
    counter["done"] += len(seeds) * len(arms)
    return res


def arm_means(runs: Mapping[str, Iterable[Any]], arm: str = "finetune") -> dict[str, float | None]:
    """Per candidate, the mean metric of its ``arm`` runs (``ArmRun`` objects or ``probe_runs`` mappings);
    ``None`` where none finished — what :func:`halving_step` promotes by."""
    out = {}
    for cid, rs in runs.items():
        vals = [float(r["metric"]) for r in map(as_run, rs) if r["arm"] == arm and r["metric"] is not None]
        out[cid] = float(np.mean(vals)) if vals else None
    return out
