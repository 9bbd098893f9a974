"""The score stage: a repeated job does no metric work (score cache across jobs), a version bump recomputes
only that metric, expensive metrics run at the candidate layers only and similarity at the chosen one."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import pytest

import app.transferability as transferability
from app.runtime import Runtime
from app.services.rankings.inputs import RankingInputs
from app.services.rankings.stages import intervals as intervals_stage
from app.services.rankings.stages import score as score_stage
from tests.kits.rankings import TOY_ZOO, image_zip, read_table, run_to_success, toy_models_dir

pytestmark = pytest.mark.slow


@pytest.fixture
def runtime(settings_factory, tmp_path):
    rt = Runtime.from_settings(settings_factory(models_dir=toy_models_dir(tmp_path / "models")))
    yield rt
    rt.close()


@pytest.fixture
def calls(monkeypatch):
    """Every metric the score stage and the bootstrap compute, by name (task difficulty and the bootstrap's
    resampled kernels included)."""
    seen: list[str] = []
    real_value, real_difficulty = score_stage.metric_value, score_stage.difficulty_value
    real_kernel_value, real_kernel_values = intervals_stage._Kernel.value, intervals_stage._Kernel.values

    def counted_kernel_value(self, *args, **kwargs):
        seen.append(self.name)
        return real_kernel_value(self, *args, **kwargs)

    def counted_kernel_values(self, many):  # a batching kernel (LogME's): one name per resample it evaluates
        seen.extend([self.name] * len(many))
        return real_kernel_values(self, many)

    def counted_value(name, *args, **kwargs):
        seen.append(name)
        return real_value(name, *args, **kwargs)

    def counted_difficulty(*args, **kwargs):
        seen.append("task_difficulty")
        return real_difficulty(*args, **kwargs)

    monkeypatch.setattr(score_stage, "metric_value", counted_value)
    monkeypatch.setattr(intervals_stage, "metric_value", counted_value)
    monkeypatch.setattr(score_stage, "difficulty_value", counted_difficulty)
    monkeypatch.setattr(intervals_stage._Kernel, "value", counted_kernel_value)
    monkeypatch.setattr(intervals_stage._Kernel, "values", counted_kernel_values)
    return seen


def _run(runtime, body, data):
    return run_to_success(runtime, body, data)


BODY = {"backbones": list(TOY_ZOO), "metrics": ["logme", "gbc", "leep", "knn_accuracy", "parc"], "layers": "all",
        "bootstrap": 4, "subset_size": 0, "seed": 4}


def test_a_repeated_job_computes_no_metric(runtime, calls):
    data = image_zip(per_class=10)
    first, project, first_rows = _run(runtime, BODY, data)
    assert len(calls) > 0 and not any(r.details["cached"] for r in first_rows)
    # the bootstrap's kernel calls are counted too: 4 replicates × each backbone, beside the score stage's
    computed = sum(r.metric == "knn_accuracy" and "duplicate_of" not in r.details for r in first_rows)
    assert calls.count("knn_accuracy") >= computed + 4 * len(TOY_ZOO)
    calls.clear()
    second, _, second_rows = _run(runtime, BODY, data)
    assert calls == []
    assert second_rows and all(r.details["cached"] for r in second_rows)
    assert sum(r.seconds for r in second_rows) == 0.0
    by_key = {(r.backbone_id, r.layer, r.metric): r.value for r in first_rows}
    assert {(r.backbone_id, r.layer, r.metric): r.value for r in second_rows} == by_key
    a, b = read_table(runtime, first, project)["table"], read_table(runtime, second, project)["table"]
    assert [(r["backbone_id"], r["rank"], r["best_layer"], r["aggregate"], r["rank_ci"]) for r in a] == \
        [(r["backbone_id"], r["rank"], r["best_layer"], r["aggregate"], r["rank_ci"]) for r in b]
    assert all(r["rank_ci"] is not None for r in b)
    calls.clear()  # another seed: the seeded metrics, and only those, are computed again
    _run(runtime, {**BODY, "seed": 5, "bootstrap": 0}, data)  # (resamples depend on the seed too)
    seeded = {m for m in transferability.METRICS if transferability.METRICS[m].random_state}
    assert calls and set(calls) <= seeded and "parc" in calls
    calls.clear()  # other rows: everything again
    _run(runtime, {**BODY, "max_samples": 20}, data)
    assert {"logme", "gbc", "leep", "knn_accuracy", "parc", "task_difficulty"} <= set(calls)


def test_a_repeated_job_looks_for_no_duplicate_tap(runtime, calls, monkeypatch):
    # finding duplicate taps loads every layer's features: only a job that computes something needs it, and
    # a copied value is cached under the duplicate's own key
    looked: list[str] = []
    real = score_stage.duplicate_layers

    def counted(inputs, backbone_id, layers):
        looked.append(backbone_id)
        return real(inputs, backbone_id, layers)

    monkeypatch.setattr(score_stage, "duplicate_layers", counted)
    data = image_zip(per_class=10)
    body = {**BODY, "bootstrap": 0}
    _, _, first = _run(runtime, body, data)
    assert sorted(looked) == sorted(TOY_ZOO)
    copied = {(r.backbone_id, r.layer, r.metric) for r in first if "duplicate_of" in r.details}
    assert copied  # the toy zoo has taps whose features equal a shallower one's
    looked.clear()
    calls.clear()
    _, _, second = _run(runtime, body, data)
    assert looked == [] and calls == []
    assert {(r.backbone_id, r.layer, r.metric) for r in second if "duplicate_of" in r.details} == copied
    assert {(r.backbone_id, r.layer, r.metric): r.value for r in second} == \
        {(r.backbone_id, r.layer, r.metric): r.value for r in first}


def test_a_repeated_job_reads_its_subset_from_the_cache(runtime, monkeypatch):
    from app.services.rankings.stages import subset as subset_stage

    greedy = []
    real = subset_stage.greedy_subset

    def counted(*args, **kwargs):
        greedy.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(subset_stage, "greedy_subset", counted)
    data = image_zip(per_class=10)
    body = {**BODY, "subset_size": 2, "bootstrap": 0}
    first, project, _ = _run(runtime, body, data)
    second, _, _ = _run(runtime, body, data)
    assert len(greedy) == 1
    a, b = (read_table(runtime, job, project)["subset"] for job in (first, second))
    assert a["cached"] is False and b["cached"] is True and a["steps"]
    assert {k: v for k, v in a.items() if k != "cached"} == {k: v for k, v in b.items() if k != "cached"}
    _run(runtime, {**body, "subset_size": 3}, data)  # another size limit: computed again
    _run(runtime, {**body, "max_samples": 20}, data)  # other rows: computed again
    assert len(greedy) == 3
    monkeypatch.setattr(subset_stage, "SUBSET_VERSION", "test-bump")  # a new selection rule: computed again
    _run(runtime, body, data)
    assert len(greedy) == 4


def test_a_version_bump_recomputes_only_that_metric(runtime, calls, monkeypatch):
    data = image_zip(per_class=10)
    body = {**BODY, "similarity": False, "bootstrap": 0}
    _, _, rows = _run(runtime, body, data)
    logme_rows = sum(r.metric == "logme" and "duplicate_of" not in r.details for r in rows)  # duplicate taps copy
    bumped = dict(transferability.METRICS)
    bumped["logme"] = dataclasses.replace(bumped["logme"], version="bumped")
    proxy = MappingProxyType(bumped)
    monkeypatch.setattr(transferability, "METRICS", proxy)
    monkeypatch.setattr(transferability.registry, "METRICS", proxy)
    calls.clear()
    _, _, rows = _run(runtime, body, data)
    assert calls == ["logme"] * logme_rows
    assert {r.metric for r in rows if not r.details["cached"]} == {"logme"}


def test_expensive_metrics_at_candidate_layers_and_similarity_at_the_chosen_one(settings_factory):
    runtime = Runtime.from_settings(settings_factory())  # the built-in zoo: its cards ship source samples
    zoo = ["zoo:cnn_small.digits", "zoo:cnn_small.shapes", "zoo:resnet_small.noise"]
    body = {**BODY, "backbones": zoo, "metrics": ["logme", "gbc", "linear_probe_accuracy"], "similarity": True}
    try:
        job_id, project, rows = _run(runtime, body, image_zip(per_class=10))
        table = {r["backbone_id"]: r for r in read_table(runtime, job_id, project)["table"]}
        inputs = RankingInputs.load(runtime, job_id)
        for backbone in zoo:
            layers = inputs.layers(backbone)
            mine = [r for r in rows if r.backbone_id == backbone]
            assert {r.layer for r in mine if r.metric == "logme"} == set(layers)
            probe_layers = {r.layer for r in mine if r.metric == "linear_probe_accuracy"}
            assert layers[-1] in probe_layers and len(probe_layers) <= 2 < len(layers)
            similarity = {(r.layer, r.metric) for r in mine if r.metric.startswith("similarity.")}
            assert similarity and {layer for layer, _ in similarity} == {table[backbone]["best_layer"]}
            assert all(table[backbone]["similarity"][m.split(".", 1)[1]] is not None for _, m in similarity)
    finally:
        runtime.close()


def test_similarity_computes_the_default_distances_or_the_named_ones(settings_factory):
    from app.transferability import METRICS, similarity_metrics

    runtime = Runtime.from_settings(settings_factory())  # the built-in zoo: its cards ship source samples
    zoo = ["zoo:cnn_small.digits", "zoo:resnet_small.noise"]
    body = {**BODY, "backbones": zoo, "metrics": ["logme"], "bootstrap": 0}
    data = image_zip(per_class=10)

    def distances(rows) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {b: set() for b in zoo}
        for r in rows:
            if r.metric.startswith("similarity."):
                out[r.backbone_id].add(r.metric.split(".", 1)[1])
        return out

    try:
        defaults = set(similarity_metrics("classification"))
        # the defaults are the cheap distances; OTDD (expensive, no decision reads it) is computed when named
        assert defaults == {"frechet_distance", "mmd"} and "otdd" not in defaults
        assert all(METRICS[m].cost == "cheap" for m in defaults) and METRICS["otdd"].cost == "expensive"
        job_id, project, rows = _run(runtime, {**body, "similarity": True}, data)
        assert distances(rows) == {b: defaults for b in zoo}
        table = {r["backbone_id"]: r for r in read_table(runtime, job_id, project)["table"]}
        assert all(set(table[b]["similarity"]) == defaults for b in zoo)
        job_id, project, rows = _run(runtime, {**body, "similarity": ["otdd"]}, data)
        assert distances(rows) == {b: {"otdd"} for b in zoo}
        table = {r["backbone_id"]: r for r in read_table(runtime, job_id, project)["table"]}
        assert all(set(table[b]["similarity"]) == {"otdd"} and table[b]["similarity"]["otdd"] > 0 for b in zoo)
        _, _, rows = _run(runtime, {**body, "similarity": False}, data)
        assert distances(rows) == {b: set() for b in zoo}
    finally:
        runtime.close()


def test_a_job_stored_before_similarity_was_frozen_computes_the_defaults():
    from app.services.rankings.plan import _similarity
    from app.transferability import similarity_metrics

    assert _similarity({}, {"similarity": True}, "classification") == similarity_metrics("classification")
    assert _similarity({}, {"similarity": False}, "classification") == ()
    assert _similarity({"similarity": ["otdd"]}, {"similarity": ["otdd"]}, "classification") == ("otdd",)


def test_the_embed_stage_runs_one_forward_pass_per_backbone_for_layers_and_head(runtime, monkeypatch):
    # LEEP reads the source head: its outputs come from the same pass as the layers' features
    import app.embeddings.cache as cache
    from app.embeddings.pipeline import SOURCE_PROBS

    passes: list[list[str]] = []
    real = cache.embed_samples

    def counted(adapter, dataset, layers, **kwargs):
        passes.append(list(layers))
        return real(adapter, dataset, layers, **kwargs)

    monkeypatch.setattr(cache, "embed_samples", counted)
    job_id, _, rows = _run(runtime, BODY, image_zip(per_class=6))
    inputs = RankingInputs.load(runtime, job_id)
    assert len(passes) == len(TOY_ZOO)
    for layers in passes:
        assert SOURCE_PROBS in layers and len(set(layers) - {SOURCE_PROBS}) >= 1
    assert {r.metric for r in rows if r.value is not None} >= {"leep", "logme"}
    for backbone in TOY_ZOO:
        assert inputs.source_probs(backbone) is not None
