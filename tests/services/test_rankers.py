"""Refitting the default ranking (``tscout ranker fit``): the benchmark CSVs read by ``app.ranking.benchmark``,
a project's own probe measurements turned into targets, the before/after comparison, a new version written
only when it is not worse, and the CLI around it."""

from __future__ import annotations

import csv
import uuid
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from app.cli import build_cli
from app.db.session import make_engine, make_sessionmaker
from app.db.tables import Job, MetricScore, ProbeRun, Project, Ranking
from app.jobs.status import JobStatus
from app.ranking import fit as F
from app.ranking.benchmark import load_benchmark
from app.services import rankers
from app.settings import Settings

SOURCES = [f"zoo:cnn_small.s{i}" for i in range(6)]
TAPS = ("stage1", "pool")


def _write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def synthetic_benchmark(folder: Path, n_targets: int = 4, seed: int = 0) -> Path:
    """logme tracks the truth, gbc is noise, one target is incomplete (a source has no truth)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    taps = [{"source": s, "layer": ly, "depth": d} for s in SOURCES for ly, d in zip(TAPS, (0.5, 1.0), strict=True)]
    gt, scores, cuts = [], [], []
    for t in range(n_targets + 1):
        tgt = f"t{t}"
        acc = rng.uniform(0.2, 0.9, len(SOURCES))
        for i, s in enumerate(SOURCES):
            if t == n_targets and i == 0:
                continue  # the incomplete target
            gt.append({"target": tgt, "role": "fit", "source": s, "finetune": acc[i]})
            for ly in TAPS:
                scores.append({"target": tgt, "source": s, "layer": ly, "metric": "logme", "value": acc[i]})
                scores.append({"target": tgt, "source": s, "layer": ly, "metric": "gbc", "value": rng.normal()})
                cuts.append({"target": tgt, "source": s, "layer": ly, "finetune": acc[i]})
    _write(folder / "taps_v2.csv", taps)
    _write(folder / "ground_truth_v2.csv", gt)
    _write(folder / "scores_v2.csv", scores)
    _write(folder / "cut_points_v2.csv", cuts)
    return folder


def _direction(m):
    return {"logme": True, "gbc": True}.get(m)


def test_the_benchmark_loader_keeps_complete_targets_only(tmp_path):
    loaded = load_benchmark(synthetic_benchmark(tmp_path / "b"), _direction, ())
    assert loaded.bench.targets == ["t0", "t1", "t2", "t3"] and loaded.incomplete == ["t4"]
    assert loaded.bench.layers[SOURCES[0]] == ["stage1", "pool"] and len(loaded.digest) == 64
    assert loaded.bench.cut_targets == ["t0", "t1", "t2", "t3"]
    with pytest.raises(FileNotFoundError, match="lacks"):
        load_benchmark(tmp_path / "nothing", _direction, ())


def test_refit_compares_before_and_after_and_writes_only_when_not_worse(tmp_path):
    settings = Settings(rankers_dir=tmp_path / "rankers")
    bench_dir = synthetic_benchmark(tmp_path / "b")
    out = rankers.refit(settings, bench_dir, write=False)
    assert out["written"] is None and set(out["after_per_target"]) == {"t0", "t1", "t2", "t3"}
    assert out["new"].weights == {"logme": 1.0}  # the informative metric, found without the held-out target
    assert out["after"] == pytest.approx(1.0)
    assert any("t4" in n for n in out["notes"])
    out = rankers.refit(settings, bench_dir)
    assert out["after"] >= out["before"] and out["written"] is not None
    assert rankers.ranker_block(settings, "classification")["name"] == out["new"].name  # the newest is used


@pytest.fixture
def session(db_url):
    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as s:
        yield s
    engine.dispose()


def test_a_projects_probe_runs_become_targets(session):
    project = Project(name=f"refit-{uuid.uuid4().hex[:8]}")
    session.add(project)
    session.flush()
    truth = {"zoo:cnn_small.s0": 0.9, "zoo:cnn_small.s1": 0.5, "zoo:cnn_small.s2": 0.7}
    for probed in (truth, {"zoo:cnn_small.s0": 0.8}):  # the second job probed one backbone: left out
        job = Job(project_id=project.id, kind="ranking", status=JobStatus.SUCCEEDED.value)
        session.add(job)
        session.flush()
        for b, acc in probed.items():
            session.add(Ranking(job_id=job.id, backbone_id=b, best_layer="pool", rank=1, aggregate=0.0,
                                details={"layers": {"stage1": {"depth": 0.5}, "pool": {"depth": 1.0}}}))
            for seed, jitter in enumerate((-0.01, 0.01)):
                session.add(ProbeRun(job_id=job.id, backbone_id=b, layer="pool", arm="finetune", seed=seed,
                                     metric=acc + jitter))
            session.add(ProbeRun(job_id=job.id, backbone_id=b, layer="pool", arm="scratch", seed=0, metric=0.1))
            for ly in ("stage1", "pool"):
                session.add(MetricScore(job_id=job.id, backbone_id=b, layer=ly, metric="logme", value=acc))
    session.flush()
    bench, notes = rankers.project_benchmark(session, project.id)
    assert len(bench.targets) == 1 and len(notes) == 1 and "fewer than 2" in notes[0]
    (target,) = bench.targets
    assert {s: bench.truth[(target, s)] for s in bench.sources(target)} == pytest.approx(truth)
    assert bench.scores[(target, "zoo:cnn_small.s1", "pool")]["logme"] == pytest.approx(0.5)
    assert F.target_quality(bench, target, {"logme": 1.0})["tau"] == pytest.approx(1.0)
    session.rollback()


@pytest.fixture
def fresh_settings():
    from app.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_cli_prints_before_and_after_and_shows_the_default(tmp_path, monkeypatch, fresh_settings):
    monkeypatch.setenv("TSCOUT_RANKERS_DIR", str(tmp_path / "rankers"))
    runner = CliRunner()
    bench_dir = synthetic_benchmark(tmp_path / "b")
    result = runner.invoke(build_cli(), ["ranker", "fit", "--bench-dir", str(bench_dir), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "before τ" in result.output and "after τ (LOTO)" in result.output and "dry run" in result.output
    assert not (tmp_path / "rankers").exists()
    result = runner.invoke(build_cli(), ["ranker", "show"])
    assert result.exit_code == 0 and '"name"' in result.output
    result = runner.invoke(build_cli(), ["ranker", "fit", "--bench-dir", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "not a directory" in result.output
