"""The independent replication of ground truth v2 (``bench/probe_replication.py``): the service's defaults,
the pair sample, the jobs, the round-by-round replay of the probe stage, the scoring and the cost, and one
real unit through the probe runner."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from app.probes.sequential import SequentialDesign
from app.schemas.rankings import ProbeOptions
from app.settings import Settings
from bench import probe_replication as rep


def _truth_rows():
    rows = []
    for i in range(4):
        rows.append({"target": "t1", "source": f"zoo:cnn_small.neg{i}", "label": "negative", "delta": "-0.2",
                     "practical_negative": "1"})
    rows.append({"target": "t1", "source": "zoo:cnn_small.small", "label": "negative", "delta": "-0.004",
                 "practical_negative": "0"})
    for i in range(6):
        rows.append({"target": "t2", "source": f"zoo:vit_tiny.pos{i}", "label": "strong_positive", "delta": "0.2",
                     "practical_negative": "0"})
        rows.append({"target": "t2", "source": f"zoo:cnn_small.none{i}", "label": "none", "delta": "0.0",
                     "practical_negative": "0"})
    return rows


def test_defaults_are_the_services():
    s = Settings.model_fields
    design = rep.default_probe_plan().design()
    assert design == SequentialDesign(margin=s["probe_margin"].default, first_round=s["probe_first_round"].default,
                                      round_size=s["probe_round_size"].default,
                                      max_seeds=s["probe_max_seeds"].default, min_seeds=3,
                                      final_test_seeds=s["probe_max_seeds"].default)
    fixed = rep.default_probe_plan(fixed_seeds=5).design()
    assert fixed.schedule() == [5] and fixed.final_n == 5
    budget, opts = rep.default_budget(), ProbeOptions()
    assert (budget.steps, budget.seconds, budget.batch_size) == (opts.budget_steps, opts.budget_seconds,
                                                                 opts.batch_size)
    assert tuple(a.value for a in opts.arms) == tuple(rep.default_probe_plan().arms)
    assert set(rep.ARMS) == set(rep.default_probe_plan().arms)


def test_select_pairs_takes_every_negative_and_a_seeded_sample():
    rows = _truth_rows()
    picked = rep.select_pairs(rows, others=4)
    assert picked == rep.select_pairs(rows, others=4)  # fixed seed
    assert sum(r["label"] == "negative" for r in picked) == 5  # every labelled negative, practical or not
    extra = picked[5:]
    assert sum(r["label"] == "strong_positive" for r in extra) == 2 and sum(r["label"] == "none" for r in extra) == 2
    assert picked != rep.select_pairs(rows, others=4, seed=1)


def test_jobs_are_small_per_target_and_stable_under_a_subset():
    pairs = [(f"t{t}", f"zoo:cnn_small.s{i}") for t in range(3) for i in range(t + 2)]  # 2, 3, 4 sources
    jobs = rep.make_jobs(pairs)
    assert sorted(p for ps in jobs.values() for p in ps) == sorted(pairs)
    assert all(len(ps) <= rep.JOB_SIZE and len({p[0] for p in ps}) == 1 for ps in jobs.values())
    assert [len(ps) for n, ps in sorted(jobs.items()) if n.startswith("t2")] == [2, 2]  # near-equal sizes
    sub = rep.make_jobs([p for p in pairs if p[0] == "t2"])
    assert sub == {n: ps for n, ps in jobs.items() if n.startswith("t2")}


def _rows_for(pairs, deltas, seeds, scratch=0.6, sd=0.02, seconds=2.0, rng=None):
    """Runs as the CSV holds them: scratch once per (target, architecture, seed)."""
    rng = rng or np.random.default_rng(0)
    done = {}
    for k in seeds:
        s = SEED_BASE + k
        for (target, source) in pairs:
            sc_key = (target, f"scratch:{rep.arch_of(source)}", "scratch", s)
            if sc_key not in done:
                done[sc_key] = _row(target, sc_key[1], "scratch", s, scratch, seconds)
            ft = scratch + deltas[(target, source)] + sd * rng.standard_normal()
            done[(target, source, "finetune", s)] = _row(target, source, "finetune", s, ft, seconds)
            done[(target, source, "linear", s)] = _row(target, source, "linear", s, scratch, seconds / 10)
    return done


SEED_BASE = rep.SEED_OFFSET


def _row(target, source, arm, seed, metric, seconds, timed_out=0):
    return {"target": target, "source": source, "arch": rep.arch_of(source), "layer": "pool", "arm": arm,
            "seed": str(seed), "metric": str(metric), "lr": "0.001", "steps": "150", "total_steps": "450",
            "budget_steps": "150", "timed_out": str(timed_out), "n_train": "80", "n_val": "20", "seconds": str(seconds)}


def test_replay_runs_the_probe_stage_rounds():
    design = rep.default_probe_plan().design()
    pairs = [("t", "zoo:cnn_small.neg"), ("t", "zoo:cnn_small.noisy"), ("t", "zoo:vit_tiny.zero")]
    deltas = {pairs[0]: -0.3, pairs[1]: 0.0, pairs[2]: 0.0}
    state = rep.replay("t#0", pairs, design, {})
    assert not state.finished and state.pending == {p: list(range(6)) for p in pairs}
    units = state.round_units[0]
    # scratch once per architecture and seed: cnn_small shared by two candidates
    assert sum(u[2] == "scratch" for u in units) == 2 * 6 and len(units) == 3 * 6 * 2 + 2 * 6
    done = _rows_for(pairs, deltas, range(6))
    state = rep.replay("t#0", pairs, design, done)
    assert state.stopped.get(pairs[0]) == "settled" and state.looks[pairs[0]].verdict.value == "negative_transfer"
    assert set(state.pending) == {pairs[1], pairs[2]} and state.pending[pairs[1]] == [6, 7, 8]
    # the fixed design is one round of five seeds, whatever it shows
    fixed = rep.replay("t#0", pairs, rep.default_probe_plan(fixed_seeds=5).design(), done)
    assert fixed.finished and all(r == 1 for r in fixed.rounds.values()) and len(fixed.round_units) == 1
    # a timed-out run is no evidence (paired_evidence keeps it out), as in the service
    late = dict(done)
    k = ("t", "zoo:cnn_small.neg", "finetune", SEED_BASE + 0)
    late[k] = {**late[k], "timed_out": "1"}
    state = rep.replay("t#0", pairs, design, late)
    assert state.looks[pairs[0]].stats.n == 5


def test_needed_orders_job_by_job_and_skips_what_is_written():
    st = rep.Setup(truth={}, pairs=[], jobs={"a#0": [("a", "zoo:cnn_small.x")], "b#0": [("b", "zoo:cnn_small.y")]},
                   sequential=rep.default_probe_plan().design(), fixed=None, truth_digest="")
    todo = rep.needed(st, {})
    assert len(todo) == 2 * 18 and {u[0] for u in todo[:18]} == {"a"}
    done = {u: {} for u in todo[:5]}
    assert rep.needed(st, done) == todo[5:]


def test_design_outcome_scores_and_counts_cost_once():
    pairs = [("t1", "zoo:cnn_small.neg"), ("t1", "zoo:cnn_small.pos"), ("t2", "zoo:vit_tiny.none")]
    truth = {pairs[0]: {"label": "negative", "delta": "-0.3", "practical_negative": "1"},
             pairs[1]: {"label": "strong_positive", "delta": "0.3", "practical_negative": "0"},
             pairs[2]: {"label": "none", "delta": "0.0", "practical_negative": "0"}}
    deltas = {pairs[0]: -0.3, pairs[1]: 0.3, pairs[2]: 0.0}
    done = _rows_for(pairs, deltas, range(20), sd=0.03)
    st = rep.Setup(truth, pairs, rep.make_jobs(pairs), rep.default_probe_plan().design(),
                   rep.default_probe_plan(fixed_seeds=5).design(), "x")
    seq = rep.design_outcome(st, st.sequential, done)
    fix = rep.design_outcome(st, st.fixed, done)
    assert seq["jobs"] == fix["jobs"] == 2 and seq["precision"] == seq["recall"] == 1.0
    assert seq["pairs_detail"]["t1|zoo:cnn_small.pos"]["verdict"] == "positive"
    assert seq["positive_on_negative"] == [] and fix["pairs"] == 3
    # fixed-5: 5 seeds × (2 finetune + 2 linear + 1 shared scratch) on t1, × 3 arms on t2
    assert fix["units"] == 5 * 5 + 5 * 3 and fix["units_by_arm"]["scratch"] == 10
    assert fix["run_seconds"] == pytest.approx(5 * (2 * 2.0 + 2 * 0.2 + 2.0) + 5 * (2 * 2.0 + 0.2))
    assert seq["mean_seeds"] >= 6 and seq["wall_seconds"] >= seq["run_seconds"] / 2
    assert seq["rule_agrees"] is True and seq["decided_by_linear"] == 0
    lin = rep.design_outcome(st, st.sequential, done, linear_evidence=True)
    assert lin["units"] <= seq["units"] and lin["pairs"] == 3  # linear rows equal scratch here: no linear claim
    text = rep.report(st, done, rep.GT_RUNS.parent / "missing.csv")
    assert "precision / recall" in text and "| t2 | zoo:vit_tiny.none |" in text and "2 of 2 jobs finished" in text
    assert "sequential + linear evidence" in text


def test_lpt_wall():
    assert rep.lpt_wall([], 2) == 0.0
    assert rep.lpt_wall([4, 3, 3, 2], 2) == 6.0
    assert rep.lpt_wall([3, 3, 2, 2, 2], 2) == 7.0  # longest first, not the optimum (6): an estimate
    assert rep.lpt_wall([5, 1, 1], 2) == 5.0


def test_one_real_unit_through_the_probe_runner(tmp_path, monkeypatch):
    from app.probes import ProbeBudget

    tiny = ProbeBudget(steps=4, seconds=60.0, batch_size=8, eval_every=2, lr_grid=(1e-3,), linear_lr_grid=(1e-2,))
    monkeypatch.setattr(rep, "default_budget", lambda: tiny)
    models = str(rep.ROOT / "models")
    rows = []
    for arm, source in (("finetune", "zoo:cnn_small.digits"), ("scratch", "scratch:cnn_small"),
                        ("linear", "zoo:cnn_small.digits")):
        row = rep.run_unit(("shapes_small", source, arm, 100), models)
        rep.append_row(tmp_path / "runs.csv", row)
        rows.append(row)
    assert [r["budget_steps"] for r in rows] == [4, 4, 4] and all(0 <= float(r["metric"]) <= 1 for r in rows)
    assert rows[1]["source"] == "scratch:cnn_small" and rows[1]["arch"] == "cnn_small"
    with open(tmp_path / "runs.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 3
    done = rep.load_done(tmp_path / "runs.csv")
    assert set(done) == {("shapes_small", "zoo:cnn_small.digits", "finetune", 100),
                         ("shapes_small", "scratch:cnn_small", "scratch", 100),
                         ("shapes_small", "zoo:cnn_small.digits", "linear", 100)}
    # the same unit again gives the same number (the replication is a pure function of its key)
    again = rep.run_unit(("shapes_small", "zoo:cnn_small.digits", "finetune", 100), models)
    assert again["metric"] == rows[0]["metric"]


def test_the_gt_recipe_is_ground_truth_v2s_with_the_rate_chosen_per_run():
    from bench.transfer import ground_truth_v2 as gt

    small, large = rep.recipe_budget("gt", "shapes_small"), rep.recipe_budget("gt", "gratings_8")
    assert (small.steps, large.steps) == (gt.STEPS_SMALL, gt.STEPS_LARGE)
    assert small.batch_size == gt.BATCH_SIZE and small.lr_grid == gt.LR_GRID
    assert small.linear_lr_grid == gt.LINEAR_LR_GRID and small.patience > small.steps  # no early stopping
    assert rep.recipe_budget("service") == rep.default_budget()
    with pytest.raises(ValueError, match="recipe"):
        rep.recipe_budget("long")
    st = rep.setup(rep.TRUTH, 8, recipe="gt")
    steps = [rep.recipe_budget("gt", ps[0][0]).steps for ps in st.jobs.values()]
    assert steps == sorted(steps) and st.recipe == "gt"  # the short targets' jobs first
