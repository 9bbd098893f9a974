"""The probe runner on tiny synthetic tasks: pairing, reproducibility, budgets, cancellation, metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score

from app.probes import ProbeBudget, ProbeCancelled, ProbeData, ReferenceArm, RunCache, run_arm, run_probe
from app.probes.evaluation import classification_scores, primary_metric, regression_scores
from app.probes.runner import ArmRun, arch_key, frozen_features
from tests.kits.probes import ConvAdapter, MlpAdapter, xor_task

BUDGET = ProbeBudget(steps=40, eval_every=10, batch_size=16, lr_grid=(3e-3, 1e-2), linear_lr_grid=(1e-2,))


@pytest.fixture(autouse=True)
def _one_thread():
    # the machine is shared: one intra-op thread is both faster and steadier for these tiny nets
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def task():
    return xor_task(120, 1)


def _without_timing(run: ArmRun) -> dict:
    d = run.to_dict()
    d.pop("seconds")
    d["details"] = {k: v for k, v in d["details"].items() if k != "lr_search"}
    return d


def test_same_seed_same_numbers_on_cpu(task):
    x, y = task
    a = run_probe(MlpAdapter("src"), "fc2", x, y, seeds=[3], budget=BUDGET, device="cpu")
    b = run_probe(MlpAdapter("src"), "fc2", x, y, seeds=[3], budget=BUDGET, device="cpu")
    assert [_without_timing(r) for r in a.runs] == [_without_timing(r) for r in b.runs]
    c = run_probe(MlpAdapter("src"), "fc2", x, y, seeds=[4], arms=("scratch",), budget=BUDGET, device="cpu")
    scratch3 = next(r for r in a.runs if r.arm == "scratch")
    assert c.runs[0].curve != scratch3.curve
    assert c.runs[0].details["data_digest"] != scratch3.details["data_digest"]


def test_arms_are_paired_per_seed(task):
    x, y = task
    res = run_probe(MlpAdapter("src"), "fc2", x, y, seeds=2, budget=BUDGET, device="cpu")
    assert [(r.arm, r.seed) for r in res.runs] == [(a, s) for s in (0, 1) for a in ("finetune", "linear", "scratch")]
    for seed in (0, 1):
        runs = [r for r in res.runs if r.seed == seed]
        assert len({r.details["data_digest"] for r in runs}) == 1
        assert len({r.details["head_digest"] for r in runs}) == 1
        assert all(r.details["budget"]["steps"] == 40 for r in runs)
        assert all(r.details["n_train"] + r.details["n_val"] == 120 for r in runs)
    assert res.runs[0].details["data_digest"] != res.runs[3].details["data_digest"]  # redrawn per seed
    for r in res.runs:
        assert r.details["metric_name"] == "accuracy" and 0.0 <= r.metric <= 1.0
        assert set(r.details["scores"]) == {"accuracy", "macro_f1"}
        steps = [p["step"] for p in r.curve]
        assert steps[0] == 0 and steps == sorted(steps) and r.curve[0]["train_loss"] is None
        assert all(p["train_loss"] > 0 for p in r.curve[1:])
        assert r.details["lr"] in BUDGET.grid(r.arm)
        assert r.details["best_step"] in steps and not r.details["timed_out"]
    assert res.by_arm().keys() == {"finetune", "linear", "scratch"}
    json.dumps(res.to_dict(), allow_nan=False)  # what the job layer stores in JSON columns


def test_finetune_and_scratch_train_equal_steps_when_not_stopped_early(task):
    x, y = task
    budget = ProbeBudget(steps=30, eval_every=10, patience=100, batch_size=16, lr_grid=(1e-2,),
                         linear_lr_grid=(1e-2,))
    res = run_probe(MlpAdapter("src"), "fc2", x, y, seeds=[0], budget=budget, device="cpu")
    assert {r.steps for r in res.runs} == {30} and {r.details["total_steps"] for r in res.runs} == {30}


def test_early_stopping_is_reported(task):
    x, y = task
    budget = ProbeBudget(steps=400, eval_every=5, patience=1, batch_size=16, lr_grid=(1e-9,))
    run = run_arm(MlpAdapter("src"), "fc2", ProbeData(x, y, task_type="classification"), "scratch", 0,
                  budget=budget, device="cpu")
    assert run.steps < 400 and run.details["lr_search"][0]["stopped_early"]


def test_wall_clock_budget_stops_and_flags(task):
    x, y = task
    budget = ProbeBudget(steps=100_000, seconds=0.3, eval_every=50, patience=100_000, batch_size=16,
                         lr_grid=(1e-2, 3e-2))
    run = run_arm(MlpAdapter("src"), "fc2", ProbeData(x, y, task_type="classification"), "finetune", 0,
                  budget=budget, device="cpu")
    assert run.details["timed_out"] and run.steps < 100_000 and run.metric is not None
    assert run.seconds < 5 and run.curve[-1]["step"] == run.steps


def test_wall_clock_cap_is_per_training_run_not_split_across_the_grid(task):
    # budget_seconds is documented as a cap per run: each rate of a 3-rate grid gets the whole cap
    x, y = task
    cap = 0.2
    budget = ProbeBudget(steps=1_000_000, seconds=cap, eval_every=1000, patience=100_000, batch_size=16,
                         lr_grid=(1e-3, 1e-2, 3e-2))
    run = run_arm(MlpAdapter("src"), "fc2", ProbeData(x, y, task_type="classification"), "scratch", 0,
                  budget=budget, device="cpu")
    search = run.details["lr_search"]
    assert [r["lr"] for r in search] == [1e-3, 1e-2, 3e-2]  # no rate skipped for lack of time
    assert all(r["timed_out"] and r["seconds"] >= 0.9 * cap for r in search)
    assert run.details["timed_out"] and run.details["timed_out_lrs"] == [1e-3, 1e-2, 3e-2]
    assert run.seconds >= 2.7 * cap
    untimed = run_arm(MlpAdapter("src"), "fc2", ProbeData(x, y, task_type="classification"), "scratch", 0,
                      budget=ProbeBudget(steps=20, seconds=60.0, eval_every=10, batch_size=16, lr_grid=(1e-2, 3e-2)),
                      device="cpu")
    assert not untimed.details["timed_out"] and untimed.details["timed_out_lrs"] == []


def test_cancellation_and_progress(task):
    x, y = task
    seen = []
    run_probe(MlpAdapter("src"), "fc2", x, y, seeds=2, arms=("finetune", "scratch"), budget=BUDGET,
              device="cpu", progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(ProbeCancelled):
        run_probe(MlpAdapter("src"), "fc2", x, y, seeds=2, budget=BUDGET, device="cpu", should_stop=stop)


def test_linear_arm_uses_cached_embeddings(task):
    x, y = task
    adapter = MlpAdapter("src")
    data = ProbeData(x, y, task_type="classification")
    feats = frozen_features(adapter, "fc2", data, device="cpu")
    computed = run_arm(adapter, "fc2", data, "linear", 2, budget=BUDGET, device="cpu")
    cached = run_arm(adapter, "fc2", data, "linear", 2, budget=BUDGET, device="cpu", cached_embeddings=feats.numpy())
    assert cached.metric == computed.metric and cached.curve == computed.curve
    with pytest.raises(ValueError, match="cached embeddings have shape"):
        run_arm(adapter, "fc2", data, "linear", 2, budget=BUDGET, device="cpu", cached_embeddings=feats[:, :3])


def test_scratch_and_reference_are_shared_across_candidates(task):
    x, y = task
    cache = RunCache()
    ref = ReferenceArm(ConvAdapter("ref"), "conv1", data=None)
    a, b = MlpAdapter("a"), MlpAdapter("b")
    assert arch_key(a) == arch_key(b)
    xi = x.reshape(-1, 1, 2, 4)  # the reference is a conv net: give it 2×4 "images" of the same rows
    ref = ReferenceArm(ConvAdapter("ref"), "conv1", data=ProbeData(xi, y, task_type="classification"))
    arms = ("finetune", "scratch", "reference")
    ra = run_probe(a, "fc2", x, y, seeds=2, arms=arms, budget=BUDGET, device="cpu", shared=cache, reference=ref)
    rb = run_probe(b, "fc2", x, y, seeds=2, arms=arms, budget=BUDGET, device="cpu", shared=cache, reference=ref)
    assert cache.hits == 4 and len(cache) == 4
    assert [c for c in b.trunk_calls if not c[1]] == []  # b never built a scratch trunk
    assert rb.metrics("scratch") == ra.metrics("scratch") and rb.metrics("reference") == ra.metrics("reference")
    shared = [r for r in rb.runs if r.arm in ("scratch", "reference")]
    assert all(r.backbone_id == "zoo:mlp_tiny.b" and r.details["shared_from"] == "zoo:mlp_tiny.a" for r in shared)
    assert {r.details["trained_backbone"] for r in rb.runs if r.arm == "reference"} == {"zoo:conv_tiny.ref"}


def test_images_from_a_dataset_of_pairs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    imgs = rng.normal(size=(80, 1, 8, 8)).astype(np.float32)
    imgs[y == 1, :, :4, :] += 1.0  # class 1: a brighter top half

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            return torch.from_numpy(imgs[i]), int(y[i])

    res = run_probe(ConvAdapter("img"), "conv2", Pairs(), y, seeds=[0], budget=BUDGET, device="cpu",
                    eval_data=Pairs(), eval_labels=y)
    assert {r.details["metric_split"] for r in res.runs} == {"eval"}
    assert res.metrics("finetune")[0] > 0.6


def test_regression_reports_r2_and_mae():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 8)).astype(np.float32)
    t = np.stack([x[:, 0] + 0.5 * x[:, 1] ** 2, -x[:, 2]], axis=1) * 10 + 3
    res = run_probe(MlpAdapter("src"), "fc1", x, t, task_type="regression", seeds=[0], budget=BUDGET, device="cpu")
    for r in res.runs:
        assert r.details["metric_name"] == "r2" and set(r.details["scores"]) == {"r2", "mae"}
    assert res.metrics("finetune")[0] > 0.3


def test_scores_match_scikit_learn():
    rng = np.random.default_rng(0)
    yt, yp = rng.integers(0, 5, 200), rng.integers(0, 6, 200)
    s = classification_scores(yt, yp)
    assert s["accuracy"] == pytest.approx(accuracy_score(yt, yp))
    assert s["macro_f1"] == pytest.approx(f1_score(yt, yp, average="macro", zero_division=0))
    tt, tp = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    r = regression_scores(tt, tp)
    assert r["r2"] == pytest.approx(r2_score(tt, tp)) and r["mae"] == pytest.approx(mean_absolute_error(tt, tp))
    assert regression_scores(np.ones(4), np.ones(4))["r2"] == 1.0
    assert primary_metric("classification", "macro_f1") == "macro_f1"
    with pytest.raises(ValueError, match="cannot be the primary"):
        primary_metric("regression", "mae")


def test_inputs_are_validated(task):
    x, y = task
    with pytest.raises(ValueError, match="labels have 3 rows"):
        ProbeData(x, y[:3], task_type="classification")
    with pytest.raises(ValueError, match="task types"):
        ProbeData(x, y, task_type="multilabel")
    with pytest.raises(ValueError, match="reference"):
        run_probe(MlpAdapter("src"), "fc2", x, y, arms=("finetune", "reference"), budget=BUDGET, device="cpu")
    with pytest.raises(ValueError, match="has no layer"):
        run_probe(MlpAdapter("src"), "fc9", x, y, seeds=1, budget=BUDGET, device="cpu")
    with pytest.raises(ValueError, match="lr_grid"):
        ProbeBudget(lr_grid=())
    with pytest.raises(ValueError, match="'finetune' is not a valid|not a valid ProbeArm"):
        run_probe(MlpAdapter("src"), "fc2", x, y, arms=("fine-tune",), budget=BUDGET, device="cpu")
    assert ArmRun.from_dict(ArmRun("zoo:a.b", "fc2", "scratch", 0, 0.5, 10, 1.0).to_dict()).metric == 0.5


def test_a_diverging_run_is_flagged_and_stores_no_nan():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    t = x[:, :1] * 2.0
    src = MlpAdapter("nan")
    src.state = {k: v * float("nan") for k, v in MlpAdapter("tmp").build().state_dict().items()}
    run = run_arm(src, "fc1", ProbeData(x, t, task_type="regression"), "finetune", 0, budget=BUDGET, device="cpu")
    assert run.metric is None and all(s["diverged"] for s in run.details["lr_search"])
    assert run.curve[0]["val_metric"] is None
    json.dumps(run.to_dict(), allow_nan=False)
