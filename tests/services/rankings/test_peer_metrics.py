"""The peers' metrics in a real ranking job: RSA and DDS read the source head's raw logits next to each
layer's features, OTCE reads the card's stored source sample at the layer, NCTI and ETran's energy get a
value on small backbones and small targets, and the pool-level scores ``etran`` and ``ncti`` enter the
aggregate, combined over the job's backbones from their parts at the chosen layers."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from app.db.tables import Embedding
from app.embeddings import SOURCE_LOGITS
from app.errors import InvalidInput
from app.runtime import Runtime
from app.services.rankings.inputs import RankingInputs
from app.transferability import (
    POOL_SCORES,
    dds,
    etran_energy,
    ncti_seli,
    otce,
    rsa,
)
from tests.kits.rankings import image_zip, read_table, run_to_success, submit_job

pytestmark = pytest.mark.slow

ZOO = ["zoo:cnn_small.digits", "zoo:cnn_small.shapes", "zoo:resnet_small.noise"]
BODY = {"backbones": ZOO, "layers": "all", "bootstrap": 0, "subset_size": 0, "seed": 3, "similarity": False,
        "metrics": ["logme", "leep", "rsa", "dds", "otce", "ncti_seli", "etran_energy", "etran", "ncti"]}


@pytest.fixture
def runtime(settings_factory):
    rt = Runtime.from_settings(settings_factory())  # the built-in zoo: heads, and cards with source samples
    yield rt
    rt.close()


def _run(runtime, body):
    return (runtime, *run_to_success(runtime, body))


def test_the_peers_metrics_in_a_ranking_job(runtime):
    job = _run(runtime, BODY)  # one job (its cost is the embedding), every check on it
    check_rsa_and_dds_read_the_source_heads_raw_logits(job)
    check_otce_reads_the_cards_stored_source_sample_at_the_layer(job)
    check_small_backbones_and_small_targets_get_ncti_and_energy_values(job)
    check_pool_scores_enter_the_aggregate_combined_over_the_jobs_backbones(job)


def _rows(rows, backbone, metric):
    return {r.layer: r for r in rows if r.backbone_id == backbone and r.metric == metric}


def check_rsa_and_dds_read_the_source_heads_raw_logits(job):
    runtime, job_id, _, rows = job
    inputs = RankingInputs.load(runtime, job_id)
    for backbone in ZOO:
        logits = inputs.source_logits(backbone)
        assert logits is not None and logits.shape[0] == len(inputs.train_labels)
        # raw logits, not probabilities: rows do not sum to 1, and their softmax is the stored probabilities
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), inputs.source_probs(backbone), atol=1e-5)
        for metric, fn in (("rsa", lambda f, r: rsa(f, r, random_state=3)), ("dds", dds)):
            got = _rows(rows, backbone, metric)
            last = inputs.layers(backbone)[-1]
            assert last in got and got[last].value is not None, (backbone, metric, got)
            for layer, row in got.items():
                if "duplicate_of" in row.details:
                    continue
                want = fn(inputs.scored(backbone, layer), logits[inputs.rows])
                assert row.value == pytest.approx(want, rel=1e-9, abs=1e-12), (backbone, metric, layer)
    with runtime.sessions() as s:
        layers = {e.layer for e in s.scalars(select(Embedding))}
    # one head pass cached both outputs (the probabilities for the head metrics, the logits for RSA/DDS)
    assert SOURCE_LOGITS in layers


def check_otce_reads_the_cards_stored_source_sample_at_the_layer(job):
    runtime, job_id, _, rows = job
    inputs = RankingInputs.load(runtime, job_id)
    for backbone in ZOO:
        got = _rows(rows, backbone, "otce")
        assert got, backbone
        for layer, row in got.items():
            if "duplicate_of" in row.details:
                continue
            src, src_labels = inputs.source_statistics(backbone, layer)
            want = otce(src, src_labels, inputs.scored(backbone, layer), inputs.labels, random_state=3)
            assert row.value == pytest.approx(want, rel=1e-9), (backbone, layer)


def check_small_backbones_and_small_targets_get_ncti_and_energy_values(job):
    runtime, job_id, _, rows = job
    inputs = RankingInputs.load(runtime, job_id)
    assert len(inputs.rows) < 200  # the reference's energy tail would be empty
    for backbone in ZOO:
        for layer, row in _rows(rows, backbone, "ncti_seli").items():
            f = inputs.scored(backbone, layer)
            assert f.shape[1] < 64 or f.shape[0] < 64  # the reference's PCA(64) would raise
            assert row.value == pytest.approx(ncti_seli(f, inputs.labels, pca_dim="auto"), rel=1e-9)
            assert row.details["dim"] == f.shape[1]
        for layer, row in _rows(rows, backbone, "etran_energy").items():
            f = inputs.scored(backbone, layer)
            assert row.value == pytest.approx(etran_energy(f, min_count=1), rel=1e-12)


def check_pool_scores_enter_the_aggregate_combined_over_the_jobs_backbones(job):
    runtime, job_id, project_id, _ = job
    result = read_table(runtime, job_id, project_id)
    assert {"etran", "logme"} <= set(result["aggregation"]["metrics"])
    # the parts are computed and shown, but only what was requested enters the aggregate
    assert "etran_lda" not in result["aggregation"]["metrics"] and "ncti_vc" not in result["aggregation"]["metrics"]
    for pool in ("etran", "ncti"):
        parts = {r["backbone_id"]: {m: r["scores"][m]["raw"] for m in POOL_SCORES[pool].parts}
                 for r in result["table"]}
        try:
            want = POOL_SCORES[pool].combine(parts)
        except ValueError as exc:  # e.g. every backbone separates 30 images perfectly: NCC 1.0 everywhere
            assert f"pool score {pool} not computed: {exc}" in result["warnings"]
            assert pool not in result["aggregation"]["metrics"]
            continue
        for r in result["table"]:
            assert r["scores"][pool]["in_aggregate"] is True
            assert r["scores"][pool]["raw"] == pytest.approx(want[r["backbone_id"]], rel=1e-4, abs=1e-5)  # the API rounds
            assert r["scores"][POOL_SCORES[pool].parts[0]]["in_aggregate"] is False


def test_a_pool_score_needs_two_backbones_and_unknown_names_list_the_pools(runtime):
    with pytest.raises(InvalidInput, match="pool-level scores: \\['etran', 'ncti'\\]"):
        submit_job(runtime, "p", image_zip(per_class=10), "target.zip", {**BODY, "metrics": ["etrann"]})
    job_id, project_id, _ = run_to_success(runtime, {**BODY, "backbones": ZOO[:1], "metrics": ["logme", "etran"]})
    result = read_table(runtime, job_id, project_id)
    assert any("pool score etran not computed" in w for w in result["warnings"]), result["warnings"]
    assert result["aggregation"]["metrics"] == ["logme"]
