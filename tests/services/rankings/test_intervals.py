"""The rank stage's bootstrap: the intervals of the implementation it replaced (each metric recomputed from
the raw features of every replicate), widened to contain the reported rank — with the metrics that have a
resampled kernel evaluated through it, and one without (ETran's LDA part) on the materialised rows."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from app.db.tables import ScoreCacheEntry
from app.execution import tasks
from app.jobs.status import JobStatus
from app.ranking import aggregate
from app.runtime import Runtime
from app.services import job_handlers
from app.services.rankings.inputs import RankingInputs
from tests.kits.rankings import TOY_ZOO, image_zip, read_table, submit_job, toy_models_dir

pytestmark = pytest.mark.slow


def test_rank_intervals_match_recomputing_every_metric_from_raw_features(settings_factory, tmp_path):
    from app.transferability import METRICS, score

    runtime = Runtime.from_settings(settings_factory(models_dir=toy_models_dir(tmp_path / "models")))
    metrics = ["logme", "gbc", "leep", "hscore_shrinkage", "knn_accuracy", "sfda", "transrate", "nce", "etran_lda"]
    assert all(METRICS[m].resampled is not None for m in metrics[:-1]) and METRICS["etran_lda"].resampled is None
    body = {"backbones": list(TOY_ZOO), "metrics": metrics, "layers": "all", "bootstrap": 12, "seed": 2,
            "subset_size": 0}
    try:
        job_id, project = submit_job(runtime, "p", image_zip(per_class=10), "target.zip", body)
        assert tasks.run_job(runtime, job_id, "test", job_handlers()) is JobStatus.SUCCEEDED
        table = read_table(runtime, job_id, project)["table"]
        inputs = RankingInputs.load(runtime, job_id)
        names = list(inputs.plan.backbones)
        by_id = {r["backbone_id"]: r for r in table}
        rng = np.random.default_rng(inputs.plan.seed)  # the old loop: resample, then score every metric
        labels = inputs.labels
        ranks = []
        for _ in range(inputs.plan.bootstrap):
            idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), size=int((labels == c).sum()),
                                                     replace=True) for c in np.unique(labels)]))
            cols = {}
            for m in metrics:
                col = []
                for b in names:
                    if METRICS[m].needs_source_head:
                        p = inputs.source_probs(b)
                        col.append(score(m, source_probs=p[inputs.rows][idx], labels=labels[idx]))
                    else:
                        f = inputs.scored(b, inputs.resolve_layer(b, by_id[b]["best_layer"]))
                        col.append(score(m, features=f[idx], labels=labels[idx]))
                cols[m] = col
            ranks.append(aggregate(cols, inputs.plan.directions).rank)
        low, high = np.quantile(np.stack(ranks), [0.025, 0.975], axis=0)
        for i, b in enumerate(names):
            point = by_id[b]["rank"]
            expected = (min(low[i], point), max(high[i], point))
            assert tuple(by_id[b]["rank_ci"]) == pytest.approx(expected, abs=1e-9), b
            assert by_id[b]["rank_ci"][0] <= point <= by_id[b]["rank_ci"][1]
        with runtime.sessions() as session:
            boot = [r for r in session.scalars(select(ScoreCacheEntry)) if r.details.get("bootstrap")]
        assert {r.metric for r in boot} == set(metrics)
        for r in boot:  # which path computed each replicate value
            assert bool(r.details.get("resampled_kernel")) is (METRICS[r.metric].resampled is not None), r.metric
    finally:
        runtime.close()


def test_the_rank_stage_runs_bootstrap_units_only_for_replicates_the_cache_lacks(settings_factory, tmp_path,
                                                                                 monkeypatch):
    from app.ranking import bootstrap_resamples
    from app.services.rankings.stages import rank as rank_stage_module
    from app.services.rankings.stages import resamples

    runtime = Runtime.from_settings(settings_factory(models_dir=toy_models_dir(tmp_path / "models")))
    units: list[str] = []
    real = rank_stage_module.bootstrap_unit

    def counted(runtime_, job_id, backbone, layer, metrics):
        units.append(backbone)
        return real(runtime_, job_id, backbone, layer, metrics)

    monkeypatch.setattr(rank_stage_module, "bootstrap_unit", counted)
    base = {"backbones": list(TOY_ZOO), "metrics": ["logme", "gbc"], "bootstrap": 6, "seed": 1, "subset_size": 0}
    data = image_zip(per_class=10)
    try:
        def run(body):
            job_id, project = submit_job(runtime, "p", data, "target.zip", body)
            assert tasks.run_job(runtime, job_id, "test", job_handlers()) is JobStatus.SUCCEEDED
            return read_table(runtime, job_id, project)["table"]

        # layer_mode "best": the layer is chosen in the rank stage, so its units compute every replicate
        best = run({**base, "layer_mode": "best"})
        assert sorted(units) == sorted(TOY_ZOO)
        units.clear()  # the same request again: every replicate is cached, no unit runs
        again = run({**base, "layer_mode": "best"})
        assert units == [] and [r["rank_ci"] for r in again] == [r["rank_ci"] for r in best]
        # layer_mode "last": the score units computed the replicates ahead, no unit runs either
        last = run({**base, "layer_mode": "last", "seed": 2})
        assert units == [] and all(r["rank_ci"] is not None for r in last)
        inputs = RankingInputs.load(runtime, submit_job(runtime, "p", data, "target.zip",
                                                        {**base, "layer_mode": "best", "seed": 3})[0])
        first = resamples.resampled(inputs)
        assert resamples.resampled(inputs) is first  # drawn once per process
        expected = bootstrap_resamples(len(inputs.rows), 6, random_state=3, labels=inputs.labels)
        assert all(np.array_equal(a, b) for a, b in zip(first.resamples, expected, strict=True))
        assert not first.resamples[0].flags.writeable and not first.counts[0].flags.writeable
        inputs.close()
    finally:
        runtime.close()
