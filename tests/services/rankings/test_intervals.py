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
