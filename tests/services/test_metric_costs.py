"""The cost summary of GET /v1/metrics: stored timings of computed values, scaled to 1,000 × 512, medians."""

from __future__ import annotations

import pytest

from app.db.session import make_engine, make_sessionmaker
from app.db.tables import Job, MetricScore, Project
from app.services.metrics import COST_BASIS, metric_catalogue, metric_costs


@pytest.fixture
def session(db_url):
    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as s:
        yield s
    engine.dispose()


def _rows(session, rows):
    project = Project(name="costs")
    session.add(project)
    session.flush()
    job = Job(project_id=project.id)
    session.add(job)
    session.flush()
    for i, (metric, seconds, details) in enumerate(rows):
        session.add(MetricScore(job_id=job.id, backbone_id="b", layer=f"l{i}", metric=metric, value=1.0,
                                seconds=seconds, details=details))
    session.commit()


def test_costs_are_scaled_medians_of_computed_values(session):
    _rows(session, [
        ("logme", 0.1, {"n_samples": 1000, "dim": 512, "cached": False}),
        ("logme", 0.2, {"n_samples": 500, "dim": 512, "cached": False}),  # → 0.4 per 1k × 512
        ("logme", 0.3, {"n_samples": 1000, "dim": 256, "cached": False}),  # → 0.6
        ("logme", 0.0, {"n_samples": 1000, "dim": 512, "cached": True, "computed_seconds": 9.0}),  # a hit
        ("similarity.otdd", 2.0, {"n_samples": 2000, "dim": 32, "cached": False}),  # → 16
        ("difficulty.knn_error", 0.5, {"n_samples": 1000, "dim": 512, "cached": False}),
        ("difficulty.imbalance", 0.0, {"n_samples": 1000, "dim": 512, "cached": False}),
        ("gbc", 0.5, {"n_samples": 1000}),  # stored before sizes were: skipped
    ])
    costs = metric_costs(session)
    assert set(costs) == {"logme", "otdd", "task_difficulty"}
    assert costs["logme"]["seconds_per_1k_x_512"] == pytest.approx(0.4)
    assert costs["logme"]["rows"] == 3 and costs["logme"]["median_seconds"] == pytest.approx(0.2)
    assert costs["otdd"]["seconds_per_1k_x_512"] == pytest.approx(16.0)
    assert costs["otdd"]["median_samples"] == 2000 and costs["otdd"]["median_features"] == 32
    assert costs["task_difficulty"]["rows"] == 1
    body = metric_catalogue(session)
    assert body["costs"] == costs and body["cost_basis"] == COST_BASIS
    assert "costs" not in metric_catalogue()
    with pytest.raises(ValueError, match="limit"):
        metric_costs(session, limit=0)
