"""An independent replication of ground truth v2 through the service's default probe design.

    python -m bench.probe_replication                 # run (resumable), then print the table
    python -m bench.probe_replication --plan          # the pairs, the jobs and what is left
    python -m bench.probe_replication --report        # the table from the rows already written

What it measures: every pair that ground truth v2 (``bench/transfer/ground_truth_v2.csv``) labels
``negative`` (all the practical negatives, ``practical_negative == 1``, and the few significant-but-small
ones), plus a fixed seeded sample of the other pairs (half positive, half ``none``), probed the way a
ranking job probes them:

* **the service's unit**: ``app.probes.run_arm`` with the recipe a default request resolves to
  (``ProbeOptions`` defaults through the probe stage's own ``_budget``: 150 steps, batch 32, the default
  learning-rate grid chosen per run on an inner split, the per-run time cap) and the default arms
  (finetune, scratch, linear); scratch is one run per (target, architecture, seed), shared by the
  candidates of that architecture as the stage shares it;
* **the service's design**: ``ProbePlan.design()`` from the settings' defaults (first round 6, rounds of 3,
  at most 20 seeds, δ = 1 point, α = 0.05), looks after each round with ``app.probes.sequential.look`` on
  ``paired_evidence`` (timed-out seeds kept out), exactly as ``probe_stage`` does. A *job* is up to
  ``top_k`` = 3 pairs of one target (the default job's Holm family), formed in a seeded order;
* **independence**: design seed k is run as seed 100 + k, disjoint from the ground truth's seeds 0–4; the
  runs evaluate on the target's held-out test split, as the ground truth does.

The fixed-5-seeds design (a request with ``"seeds": 5``) is the same units at seeds 100–104, so one run
measures both side by side. Verdicts are scored with ``app.probes.evaluation.score_verdict_rule`` against
``practical_negative``. Cost is the runs' own clocks (``seconds``), summed per design with every run counted
once (a scratch run shared by two candidates, or by both designs' jobs, once), and an estimated job wall
time on two workers (each round's units packed longest first). The ground truth's cost for the same pairs,
and for every candidate of a target, comes from ``runs_v2.csv``.

Every run is one row of ``bench/replication/runs.csv`` keyed by (target, source, arm, seed), appended as it
lands; running the command again continues from there. Two worker processes, one torch thread each.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import csv
import hashlib
import math
import multiprocessing as mp
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "bench" / "replication"
TRUTH = ROOT / "bench" / "transfer" / "ground_truth_v2.csv"
GT_RUNS = ROOT / "bench" / "transfer" / "runs_v2.csv"
SEED_OFFSET = 100  # design seed k runs as seed 100 + k: disjoint from the ground truth's 0–4
SAMPLE_SEED = 2026
JOB_SIZE = 3  # ProbeOptions.top_k's default: one job's Holm family
FIXED_SEEDS = 5
ARMS = ("finetune", "scratch", "linear")
FIELDS = ("target", "source", "arch", "layer", "arm", "seed", "metric", "lr", "steps", "total_steps",
          "budget_steps", "timed_out", "n_train", "n_val", "seconds")

Pair = tuple[str, str]
UnitKey = tuple[str, str, str, int]  # (target, source or scratch:<arch>, arm, seed)


# -- the service's defaults -----------------------------------------------------------------------------
def default_probe_plan(*, fixed_seeds: int | None = None):
    """The ``ProbePlan`` a request ``{"probe": {}}`` (or ``{"seeds": N}``) resolves to with default settings."""
    from app.schemas.rankings import ProbeOptions
    from app.services.rankings.plan import ProbePlan
    from app.settings import Settings

    opts = ProbeOptions(seeds=fixed_seeds)
    s = Settings.model_fields
    if fixed_seeds is None:
        first = min(s["probe_first_round"].default, s["probe_max_seeds"].default)
        size, cap = s["probe_round_size"].default, s["probe_max_seeds"].default
    else:
        first = size = cap = fixed_seeds
    return ProbePlan(top_k=opts.top_k, include_suspicious=opts.include_suspicious,
                     max_suspicious=opts.max_suspicious, first_round=first, round_size=size, max_seeds=cap,
                     final_test_seeds=cap, fixed=fixed_seeds is not None, candidates=None,
                     time_budget_seconds=s["probe_time_budget_seconds"].default,
                     budget_steps=opts.budget_steps, budget_seconds=opts.budget_seconds,
                     arms=tuple(a.value for a in opts.arms), margin=s["probe_margin"].default,
                     lr_grid=tuple(opts.lr_grid) if opts.lr_grid else None, batch_size=opts.batch_size)


def default_budget():
    """The recipe of every run: the probe stage's own ``_budget`` over the default plan."""
    from app.services.rankings.stages.probe_runs import _budget

    return _budget(SimpleNamespace(probe=default_probe_plan()))


RECIPES = ("service", "gt")


def recipe_budget(recipe: str, target: str | None = None):
    """``service``: what a default request runs (:func:`default_budget`). ``gt``: ground truth v2's own
    recipe for ``target`` — its step budget by training-set size, batch 16, its learning-rate grids, no early
    stopping — with the rate chosen per run on the run's inner split, as the service chooses it (the ground
    truth chose it once, on seed 0), so that the replication differs from the truth only in its seeds."""
    if recipe == "service":
        return default_budget()
    if recipe != "gt":
        raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}")
    from dataclasses import replace

    from bench.transfer import ground_truth_v2 as gt

    if target is None:
        raise ValueError("the gt recipe depends on the target's size: name the target")
    _, train, _ = gt._task_data(target)
    return replace(gt.budget(gt.steps_for(len(train)), gt.LR_GRID[0]), lr_grid=gt.LR_GRID,
                   linear_lr_grid=gt.LINEAR_LR_GRID)


# -- what is measured -----------------------------------------------------------------------------------
def arch_of(source: str) -> str:
    from bench.transfer.ground_truth_v2 import arch_of as gt_arch

    return gt_arch(source)


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def select_pairs(truth: Sequence[Mapping[str, str]], others: int, seed: int = SAMPLE_SEED) -> list[dict[str, str]]:
    """Every pair labelled ``negative`` (the practical negatives among them), and ``others`` more drawn
    with a fixed seed: half from the positive labels, the rest from ``none``."""
    negative = [r for r in truth if r["label"] == "negative" or int(r["practical_negative"])]
    positive = sorted((r for r in truth if r["label"] in ("positive", "strong_positive")),
                      key=lambda r: (r["target"], r["source"]))
    none = sorted((r for r in truth if r["label"] == "none" and not int(r["practical_negative"])),
                  key=lambda r: (r["target"], r["source"]))
    rng = np.random.default_rng(seed)
    n_pos = min(len(positive), others // 2)
    n_none = min(len(none), others - n_pos)
    picked = [positive[i] for i in sorted(rng.choice(len(positive), n_pos, replace=False))] if n_pos else []
    picked += [none[i] for i in sorted(rng.choice(len(none), n_none, replace=False))] if n_none else []
    return sorted(negative, key=lambda r: (r["target"], r["source"])) + picked


def make_jobs(pairs: Sequence[Pair], size: int = JOB_SIZE, seed: int = SAMPLE_SEED) -> dict[str, list[Pair]]:
    """Pairs of one target, in a seeded order, in jobs of at most ``size`` (one Holm family each)."""
    by: dict[str, list[Pair]] = defaultdict(list)
    for p in sorted(pairs):
        by[p[0]].append(p)
    jobs = {}
    for target in sorted(by):  # one generator per target: a --targets subset forms the same jobs
        rng = np.random.default_rng([seed, int(hashlib.sha256(target.encode()).hexdigest()[:8], 16)])
        members = [by[target][i] for i in rng.permutation(len(by[target]))]
        n = math.ceil(len(members) / size)
        for j in range(n):
            jobs[f"{target}#{j}"] = members[j::n]  # near-equal sizes
    return jobs


def unit_rows(done: Mapping[UnitKey, Mapping[str, Any]], pair: Pair, seed: int) -> list[dict[str, Any] | None]:
    target, source = pair
    return [done.get((target, source, "finetune", seed)), done.get((target, f"scratch:{arch_of(source)}",
                                                                     "scratch", seed))]


def pair_runs(done: Mapping[UnitKey, Mapping[str, Any]], pair: Pair, seeds: Iterable[int]) -> list[dict[str, Any]]:
    """The pair's finetune, scratch and linear runs of the given design seeds, as the verdict code reads runs."""
    out = []
    for k in seeds:
        for row in [*unit_rows(done, pair, SEED_OFFSET + k), done.get((*pair, "linear", SEED_OFFSET + k))]:
            if row is not None:
                out.append({"arm": row["arm"], "seed": k, "metric": float(row["metric"]),
                            "steps": int(row["steps"]), "seconds": float(row["seconds"]),
                            "details": {"timed_out": bool(int(row["timed_out"])),
                                        "budget": {"steps": int(row["budget_steps"])}}})
    return out


@dataclass
class JobState:
    """Where one job's rounds stand on the rows written so far (``replay``)."""

    name: str
    pairs: list[Pair]
    rounds: dict[Pair, int] = field(default_factory=dict)
    stopped: dict[Pair, str] = field(default_factory=dict)
    pending: dict[Pair, list[int]] = field(default_factory=dict)  # design seeds the current round still needs
    looks: dict[Pair, Any] = field(default_factory=dict)
    round_units: list[list[UnitKey]] = field(default_factory=list)  # units each round ran (cost, wall time)

    @property
    def finished(self) -> bool:
        return not self.pending


def round_units(pending: Mapping[Pair, Sequence[int]], arms: Sequence[str]) -> list[UnitKey]:
    """The units of one round, scratch once per (target, architecture, seed) — the stage's sharing."""
    units: list[UnitKey] = []
    for (target, source), seeds in pending.items():
        for arm in arms:
            for k in seeds:
                name = f"scratch:{arch_of(source)}" if arm == "scratch" else source
                key = (target, name, arm, SEED_OFFSET + k)
                if key not in units:
                    units.append(key)
    return units


def replay(name: str, pairs: Sequence[Pair], design, done: Mapping[UnitKey, Mapping[str, Any]],
           arms: Sequence[str] = ARMS, linear_evidence: bool = False) -> JobState:
    """Run ``probe_stage``'s loop over the rows written so far: rounds of seeds, a ``look`` at every candidate
    after each (with the linear − scratch evidence when ``linear_evidence``, as a request with
    ``"linear_evidence": true`` does), settled / futile / max-seeds candidates stopped; stops where a round's
    units are missing."""
    from app.probes.record import paired_evidence
    from app.probes.sequential import look

    state = JobState(name, list(pairs), rounds=dict.fromkeys(pairs, 0))
    pending = {p: design.next_seeds(0) for p in pairs}
    tried: dict[Pair, set[int]] = {p: set() for p in pairs}
    while pending:
        units = round_units(pending, arms)
        if any(u not in done for u in units):
            state.pending = pending
            state.round_units.append(units)
            return state
        state.round_units.append(units)
        for p, seeds in pending.items():
            state.rounds[p] += 1
            tried[p] |= set(seeds)
        runs = {p: pair_runs(done, p, sorted(tried[p])) for p in pairs}
        paired = {p: paired_evidence(runs[p])[0] for p in pairs}
        linear = {p: paired_evidence(runs[p], arm="linear")[0] for p in pairs} if linear_evidence else None
        looks = look(paired, design, stopped=state.stopped, attempted=tried, linear=linear)
        state.looks = looks
        state.stopped.update({p: lk.action for p, lk in looks.items()
                              if lk.action != "continue" and p not in state.stopped})
        pending = {p: lk.next_seeds for p, lk in looks.items() if lk.action == "continue" and lk.next_seeds}
        if design.max_seeds == design.first_round:  # the fixed design: one round
            break
    state.pending = {}
    return state


# -- the worker side ------------------------------------------------------------------------------------
def _worker_init() -> None:
    with contextlib.suppress(OSError):
        os.setsid()  # its own session: shares the machine like any other command (see ground_truth_v2)
    import torch

    torch.set_num_threads(1)


def run_unit(key: UnitKey, models_dir: str, recipe: str = "service") -> dict[str, Any]:
    """Train one (target, source, arm, seed) unit with the service's recipe (the worker entry point)."""
    from app.probes import run_arm
    from app.zoo.recipe import deterministic
    from bench.transfer import ground_truth_v2 as gt

    target, source, arm, seed = key
    model = representative(source, models_dir) if arm == "scratch" else source
    _, train, test = gt._task_data(target)
    adapter = gt._adapter(models_dir, model)
    layer = adapter.layers()[-1]
    with deterministic(1):
        cached = gt._linear_cache(models_dir, model, layer, target) if arm == "linear" else None
        run = run_arm(adapter, layer, train, arm, seed, budget=recipe_budget(recipe, target), device="cpu",
                      cached_embeddings=cached, eval_data=test, backbone_id=source)
    d = run.details
    return {"target": target, "source": source, "arch": arch_of(source), "layer": layer, "arm": arm, "seed": seed,
            "metric": round(float(run.metric), 5) if run.metric is not None else "nan", "lr": d["lr"],
            "steps": run.steps, "total_steps": d["total_steps"], "budget_steps": d["budget"]["steps"],
            "timed_out": int(bool(d["timed_out"])), "n_train": d["n_train"], "n_val": d["n_val"],
            "seconds": round(run.seconds, 3)}


def representative(scratch: str, models_dir: str) -> str:
    """The zoo source whose adapter builds ``scratch:<arch>`` (the first of that architecture by id)."""
    from app.backbones.catalogue import Catalogue

    arch = arch_of(scratch)
    ids = sorted(s.id for s in Catalogue(Path(models_dir)).list() if s.id.startswith(f"zoo:{arch}."))
    if not ids:
        raise ValueError(f"no zoo source of architecture {arch!r} in {models_dir}")
    return ids[0]


# -- storage --------------------------------------------------------------------------------------------
def load_done(path: Path) -> dict[UnitKey, dict[str, str]]:
    return {(r["target"], r["source"], r["arm"], int(r["seed"])): r for r in read_rows(path)}


def append_row(path: Path, row: Mapping[str, Any]) -> None:
    new = not path.is_file() or path.stat().st_size == 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\n")
        if new:
            w.writeheader()
        w.writerow({k: row[k] for k in FIELDS})
        fh.flush()
        os.fsync(fh.fileno())


# -- driving --------------------------------------------------------------------------------------------
@dataclass
class Setup:
    truth: dict[Pair, dict[str, str]]
    pairs: list[Pair]
    jobs: dict[str, list[Pair]]
    sequential: Any
    fixed: Any
    truth_digest: str
    recipe: str = "service"


def setup(truth_path: Path, others: int, targets: Sequence[str] | None = None, recipe: str = "service") -> Setup:
    from app.probes.sequential import SequentialDesign

    rows = read_rows(truth_path)
    if not rows:
        raise SystemExit(f"no ground truth at {truth_path}")
    truth = {(r["target"], r["source"]): r for r in rows}
    chosen = select_pairs(rows, others)
    if targets:  # a pilot: the same pairs and jobs, restricted to these targets
        chosen = [r for r in chosen if r["target"] in set(targets)]
    pairs = [(r["target"], r["source"]) for r in chosen]
    jobs = make_jobs(pairs)
    # the jobs holding the most practical negatives run first (the acceptance is about them)
    # (under the gt recipe the few-shot targets first: their runs are 4× shorter than the 60-shot targets')
    def cost(n: str) -> int:
        return 0 if recipe == "service" else recipe_budget(recipe, jobs[n][0][0]).steps

    order = sorted(jobs, key=lambda n: (cost(n), -sum(int(truth[p]["practical_negative"]) for p in jobs[n]), n))
    seq = default_probe_plan().design()
    fixed = default_probe_plan(fixed_seeds=FIXED_SEEDS).design()
    assert isinstance(seq, SequentialDesign) and isinstance(fixed, SequentialDesign)
    digest = hashlib.sha256(truth_path.read_bytes()).hexdigest()[:12]
    return Setup(truth, pairs, {n: jobs[n] for n in order}, seq, fixed, digest, recipe)


def needed(st: Setup, done: Mapping[UnitKey, Any]) -> list[UnitKey]:
    """Units the current round of every unfinished job still needs, earlier rounds first; the fixed design's
    round (seeds 100–104) is a subset of the sequential first round."""
    out: list[tuple[int, int, UnitKey]] = []
    seen: set[UnitKey] = set()
    for j, (name, pairs) in enumerate(st.jobs.items()):
        state = replay(name, pairs, st.sequential, done)
        if state.finished:
            continue
        r = len(state.round_units) - 1
        for u in state.round_units[-1]:
            if u not in done and u not in seen:
                seen.add(u)
                out.append((r, j, u))
    out.sort(key=lambda t: (t[1], t[0], t[2][3]))  # job by job: a run cut short leaves whole jobs
    return [u for _, _, u in out]


def run(st: Setup, runs_path: Path, models_dir: str, workers: int, stop_at: float | None,
        recipe: str = "service") -> None:
    done = load_done(runs_path)
    started, trained, secs = time.monotonic(), 0, 0.0
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
        inflight: dict[cf.Future, UnitKey] = {}
        while True:
            todo = [u for u in needed(st, done) if u not in inflight.values()]
            if stop_at is None or time.time() < stop_at:
                for u in todo[: max(0, workers + 1 - len(inflight))]:
                    inflight[pool.submit(run_unit, u, models_dir, recipe)] = u
            if not inflight:
                break
            finished, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                u = inflight.pop(fut)
                row = fut.result()
                append_row(runs_path, row)
                done[u] = {k: str(v) for k, v in row.items()}
                trained += 1
                secs += float(row["seconds"])
                left = len([x for x in needed(st, done) if x not in inflight.values()])
                open_jobs = sum(not replay(n, p, st.sequential, done).finished for n, p in st.jobs.items())
                print(f"[{time.strftime('%H:%M:%S')}] {u[0]} {u[1]} {u[2]} seed {u[3]}: metric {row['metric']} "
                      f"in {row['seconds']} s | trained {trained} ({secs:.0f} run-s, "
                      f"{time.monotonic() - started:.0f} s wall), {open_jobs} jobs open, {left} units queued now",
                      flush=True)
    if stop_at is not None and time.time() >= stop_at:
        print(f"stopped submitting at the --stop-at time; {len(needed(st, done))} units left (run again to resume)")


# -- scoring --------------------------------------------------------------------------------------------
def lpt_wall(durations: Sequence[float], workers: int) -> float:
    """Makespan of one round's units on ``workers`` workers, longest first (a round ends before the look)."""
    load = [0.0] * workers
    for d in sorted(durations, reverse=True):
        load[load.index(min(load))] += d
    return max(load) if durations else 0.0


def design_outcome(st: Setup, design, done: Mapping[UnitKey, Mapping[str, Any]], workers: int = 2, *,
                   linear_evidence: bool = False, only: Iterable[str] | None = None) -> dict[str, Any]:
    """Verdicts, seeds, units, run-seconds and estimated wall time of one design over the jobs it has
    finished (``only``: of these jobs). Verdicts are the replayed probe stage's own (``score_verdicts``);
    without linear evidence they are checked against ``score_verdict_rule``'s replay of the same Δ."""
    from app.probes.evaluation import score_verdict_rule, score_verdicts
    from app.probes.record import paired_evidence

    states = {n: replay(n, p, design, done, linear_evidence=linear_evidence) for n, p in st.jobs.items()}
    keep = set(states) if only is None else set(only)
    complete = {n: s for n, s in states.items() if s.finished and n in keep}
    replication, units, job_wall, job_secs = {}, set(), {}, {}
    for n, s in complete.items():
        used: list[UnitKey] = [u for rnd in s.round_units for u in rnd]
        units |= set(used)
        job_secs[n] = sum(float(done[u]["seconds"]) for u in set(used))
        job_wall[n] = sum(lpt_wall([float(done[u]["seconds"]) for u in rnd], workers) for rnd in s.round_units)
        for p in s.pairs:
            seeds = sorted({k for rnd in s.round_units for (t, src, arm, seed) in rnd
                            if t == p[0] and arm == "finetune" and src == p[1] for k in [seed - SEED_OFFSET]})
            deltas, _ = paired_evidence(pair_runs(done, p, seeds))
            replication[p] = {SEED_OFFSET + k: d for k, d in deltas.items()}
    if not complete:
        return {"jobs": 0}
    truth = {p: {"label": st.truth[p]["label"], "delta": float(st.truth[p]["delta"]),
                 "practical_negative": int(st.truth[p]["practical_negative"])} for p in replication}
    jobs = {n: s.pairs for n, s in complete.items()}
    verdicts = {p: {"verdict": s.looks[p].verdict.value, "seeds": s.looks[p].stats.n,
                    "stop": s.stopped.get(p, "fixed"), "decided_by": s.looks[p].decided_by}
                for s in complete.values() for p in s.pairs}
    scored = score_verdicts(verdicts, truth, margin=design.margin)
    if not linear_evidence:  # the library's scorer, replaying the same Δ, must agree with the stage's replay
        rule = score_verdict_rule(replication, truth, design=design, truth_seeds=range(5), jobs=jobs)
        scored["rule_agrees"] = all(rule["pairs_detail"][k]["verdict"] == v["verdict"]
                                    for k, v in scored["pairs_detail"].items())
    stops = defaultdict(int)
    for s in complete.values():
        for p in s.pairs:
            stops[s.stopped.get(p, "fixed")] += 1
    by_arm = defaultdict(int)
    for u in units:
        by_arm[u[2]] += 1
    scored["decided_by_linear"] = sum(v["decided_by"] == "linear" for v in verdicts.values())
    batch = {t: recipe_budget(st.recipe, t).batch_size for t in {u[0] for u in units}}
    return {**scored, "jobs": len(complete), "jobs_total": len(states), "units": len(units),
            "units_by_arm": dict(by_arm), "run_seconds": sum(float(done[u]["seconds"]) for u in units),
            "sample_steps": sum(int(done[u]["total_steps"]) * batch[u[0]] for u in units),
            "wall_seconds": sum(job_wall.values()), "job_seconds": job_secs, "job_wall": job_wall,
            "stops": dict(stops), "timed_out_units": sum(int(done[u]["timed_out"]) for u in units)}


def gt_cost(gt_runs: Sequence[Mapping[str, str]], pairs: Iterable[Pair]) -> dict[str, float]:
    """Run-seconds the ground-truth protocol spent on these pairs (their finetune jobs and their targets'
    scratch jobs, each once) and on every candidate of their targets (every finetune and scratch job)."""
    from bench.transfer.ground_truth_v2 import BATCH_SIZE, current

    rows = [r for r in current(gt_runs) if r["arm"] in ("finetune", "scratch") and r["layer"] == last_layer(r)]
    pairs = list(pairs)
    want = {(t, s) for t, s in pairs} | {(t, f"scratch:{arch_of(s)}") for t, s in pairs}
    targets = {t for t, _ in pairs}
    same = sum(float(r["seconds"]) for r in rows if (r["target"], r["source"]) in want)
    same_steps = sum(int(r["steps"]) * BATCH_SIZE for r in rows if (r["target"], r["source"]) in want)
    every = sum(float(r["seconds"]) for r in rows if r["target"] in targets)
    n_same = sum((r["target"], r["source"]) in want for r in rows)
    n_every = sum(r["target"] in targets for r in rows)
    return {"pairs_seconds": same, "pairs_runs": n_same, "targets_seconds": every, "targets_runs": n_every,
            "pairs_sample_steps": same_steps}


def last_layer(row: Mapping[str, str]) -> str:
    """The source's last tap (the layer the labels and the probes use); scratch rows are at it already."""
    from bench.transfer.ground_truth_v2 import _adapter

    if row["source"].startswith("scratch:"):
        return row["layer"]
    return _adapter(str(ROOT / "models"), row["source"]).layers()[-1]


def gt_job_cost(gt_runs: Sequence[Mapping[str, str]], target: str) -> float:
    return gt_cost(gt_runs, [(target, s) for (t, s) in _target_sources(gt_runs, target)])["targets_seconds"]


def _target_sources(gt_runs: Sequence[Mapping[str, str]], target: str) -> set[Pair]:
    return {(r["target"], r["source"]) for r in gt_runs if r["target"] == target and r["arm"] == "finetune"}


def report(st: Setup, done: Mapping[UnitKey, Mapping[str, Any]], gt_runs_path: Path) -> str:
    """The table, as markdown (also printed): fixed 5 seeds, the sequential default and the sequential design
    with linear evidence, over the jobs the sequential default has finished (the other two need no more)."""
    from app.probes.record import paired_evidence

    finished = [n for n, p in st.jobs.items() if replay(n, p, st.sequential, done).finished]
    cols = {"fixed 5 seeds": design_outcome(st, st.fixed, done, only=finished),
            "sequential (default)": design_outcome(st, st.sequential, done, only=finished),
            "sequential + linear evidence": design_outcome(st, st.sequential, done, only=finished,
                                                           linear_evidence=True)}
    n_pn = sum(int(st.truth[p]["practical_negative"]) for p in st.pairs)
    lines = [f"Ground truth: `{TRUTH.name}` sha256 {st.truth_digest}…; {len(st.pairs)} pairs "
             f"({n_pn} practical negatives, {sum(st.truth[p]['label'] == 'negative' for p in st.pairs)} labelled "
             f"negative), {len(st.jobs)} jobs of ≤ {JOB_SIZE}; recipe **{st.recipe}**; seeds {SEED_OFFSET}+; "
             f"{len(done)} runs written; "
             f"**{len(finished)} of {len(st.jobs)} jobs finished** (the table covers those).", ""]
    if not finished:
        return "\n".join(lines + ["No job has finished yet."])
    out = list(cols.values())
    lines += ["| | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]

    def row(label: str, cells: Iterable[Any]) -> None:
        lines.append(f"| {label} | " + " | ".join(str(c) for c in cells) + " |")

    def pr(o: dict[str, Any]) -> str:
        f = lambda v: "n/a" if v != v else f"{v:.2f}"  # noqa: E731 (nan: no claim or no negative)
        return f"{f(o['precision'])} / {f(o['recall'])} ({o['true_positives']} of {o['practical_negative_pairs']})"

    row("pairs scored (practical negatives)", [f"{o['pairs']} ({o['practical_negative_pairs']})" for o in out])
    row("precision / recall of negative_transfer", [pr(o) for o in out])
    row("negative_transfer verdicts (false)", [f"{o['negative_transfer_verdicts']} ({o['false_positives']})" for o in out])
    row("`positive` on a GT-negative pair", [len(o["positive_on_negative"]) for o in out])
    row("inconclusive share", [f"{o['inconclusive_share']:.2f}" for o in out])
    row("verdicts", [", ".join(f"{k} {v}" for k, v in o["verdict_counts"].items()) for o in out])
    row("decided by the linear arm", [o["decided_by_linear"] for o in out])
    row("stop reasons", [", ".join(f"{k} {v}" for k, v in sorted(o["stops"].items())) for o in out])
    row("mean paired seeds per pair", [f"{o['mean_seeds']:.1f}" for o in out])
    row("runs (scratch shared)", [f"{o['units']} (" + ", ".join(f"{k} {v}" for k, v in sorted(o["units_by_arm"].items()))
                                  + ")" for o in out])
    row("timed-out runs", [o["timed_out_units"] for o in out])
    row("run-seconds", [f"{o['run_seconds']:.0f}" for o in out])
    row("est. wall, 2 workers, rounds in series", [f"{o['wall_seconds']:.0f} s" for o in out])
    row("wall vs fixed-5", [f"{o['wall_seconds'] / out[0]['wall_seconds']:.2f}×" for o in out])
    gt_rows = read_rows(gt_runs_path)
    scored_pairs = [tuple(k.split("|")) for k in out[1]["pairs_detail"]]
    if gt_rows:
        g = gt_cost(gt_rows, scored_pairs)
        row("cost vs GT protocol on the same pairs "
            f"({g['pairs_runs']} GT runs, {g['pairs_seconds']:.0f} run-s)",
            [f"{o['run_seconds'] / g['pairs_seconds']:.1%}" for o in out])
        row(f"training samples (steps × batch) vs GT on the same pairs ({g['pairs_sample_steps']:,})",
            [f"{o['sample_steps'] / g['pairs_sample_steps']:.1%}" for o in out])
        per_target = {t: gt_job_cost(gt_rows, t) for t in {p[0] for p in scored_pairs}}
        ratios = [[o["job_seconds"][n] / per_target[n.split("#")[0]] for n in o["job_seconds"]] for o in out]
        row("one job vs GT on all 16 candidates of its target (median, max)",
            [f"{np.median(r):.1%}, {max(r):.1%}" for r in ratios])
    agree = out[1].get("rule_agrees")
    lines += ["", f"`score_verdict_rule` replaying the same Δ agrees with the replayed stage: {agree}.", "",
              "| target | source | GT label | practical neg. | GT Δ | rep. Δ (seeds) | fixed-5 | sequential | "
              "+ linear |", "|---|---|---|---:|---:|---:|---|---|---|"]
    for key, v in out[1]["pairs_detail"].items():
        t, src = key.split("|")
        tr = st.truth[(t, src)]
        d = list(paired_evidence(pair_runs(done, (t, src), range(v["seeds"])))[0].values())
        f, lin = out[0]["pairs_detail"][key], out[2]["pairs_detail"][key]
        lines.append(f"| {t} | {src} | {tr['label']} | {tr['practical_negative']} | {float(tr['delta']):+.3f} | "
                     f"{np.mean(d) if d else float('nan'):+.3f} ({v['seeds']}) | {f['verdict']} | "
                     f"{v['verdict']} ({v['stop']}) | {lin['verdict']} ({lin['seeds']}"
                     f"{', linear' if lin.get('decided_by') == 'linear' else ''}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--truth", type=Path, default=TRUTH)
    parser.add_argument("--gt-runs", type=Path, default=GT_RUNS)
    parser.add_argument("--recipe", choices=RECIPES, default="service",
                        help="service: the default request's recipe; gt: ground truth v2's (rate chosen per run)")
    parser.add_argument("--runs", type=Path, default=None,
                        help="default: bench/replication/runs.csv (service), runs_gt_recipe.csv (gt)")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--others", type=int, default=8, help="pairs sampled beyond the GT-negative ones")
    parser.add_argument("--targets", nargs="*", default=None, help="only these targets' pairs (a pilot)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stop-at", default=None, help="HH:MM (UTC): submit no unit after this time")
    parser.add_argument("--plan", action="store_true")
    parser.add_argument("--report", action="store_true", help="print the table from the rows written")
    parser.add_argument("--write-md", type=Path, default=None, help="also write the table to this markdown file")
    a = parser.parse_args(argv)
    if a.runs is None:
        a.runs = HERE / ("runs.csv" if a.recipe == "service" else "runs_gt_recipe.csv")
    st = setup(a.truth, a.others, a.targets, a.recipe)
    if a.plan:
        done = load_done(a.runs)
        for n, p in st.jobs.items():
            s = replay(n, p, st.sequential, done)
            print(f"{n}: {', '.join(src for _, src in p)} — rounds done {len(s.round_units) - (not s.finished)}, "
                  f"{'finished' if s.finished else f'{sum(u not in done for u in s.round_units[-1])} units left in round'}")
        print(f"{len(st.pairs)} pairs, {len(st.jobs)} jobs, {len(done)} runs written, "
              f"{len(needed(st, done))} units needed now")
        return
    if not a.report:
        stop_at = None
        if a.stop_at:
            hh, mm = (int(x) for x in a.stop_at.split(":"))
            now = time.gmtime()
            stop_at = time.time() + ((hh * 60 + mm) - (now.tm_hour * 60 + now.tm_min)) * 60 - now.tm_sec
        print(f"{len(st.pairs)} pairs in {len(st.jobs)} jobs; recipe {a.recipe}: "
              f"{recipe_budget(a.recipe, st.pairs[0][0]).to_dict()}; "
              f"design {st.sequential.to_dict()}", flush=True)
        run(st, a.runs, str(a.models), a.workers, stop_at, a.recipe)
    text = report(st, load_done(a.runs), a.gt_runs)
    print(text)
    if a.write_md:
        a.write_md.write_text(text + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
