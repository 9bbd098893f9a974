"""The fitted default ranking in the job: a ranking with no options is aggregated by the newest fitted
default (built-in or this deployment's refit), names it in its resolved request and its read, and computes
the same combined score as the fit; a request that names its metrics gets their rank mean. Duplicate taps
are scored once, and a backbone with degenerate features is flagged and never called close."""

from __future__ import annotations

import hashlib
import importlib

import numpy as np
import pytest

from app.db.tables import Job
from app.ranking import fit as F
from app.runtime import Runtime
from app.services.rankings.stages import rank as rank_stage
from tests.kits.rankings import TOY_ZOO, read_table, run_to_success, toy_models_dir

A = importlib.import_module("app.ranking.aggregate")
pytestmark = pytest.mark.slow


@pytest.fixture
def runtime(settings_factory, tmp_path):
    rt = Runtime.from_settings(settings_factory(models_dir=toy_models_dir(tmp_path / "models"),
                                                rankers_dir=tmp_path / "rankers"))
    yield rt
    rt.close()


def _run(runtime, body):
    job_id, project_id, rows = run_to_success(runtime, body)
    with runtime.sessions() as s:
        request = s.get(Job, job_id).request
    return read_table(runtime, job_id, project_id), request, rows


def _deployment_default(runtime, weights: dict[str, float], combination: str = "zscore") -> F.FittedDefault:
    newest = F.load_default("classification")
    default = F.FittedDefault(version=max(F.versions("classification")) + 50, task_type="classification",
                              metrics=tuple(sorted(weights)), weights=weights,
                              directions={m: True for m in weights}, layer_rule="last",
                              ground_truth_digest=newest.ground_truth_digest, fitted_on=("a", "b"),
                              combination=combination)
    F.write_default(default, runtime.settings.rankers_dir)
    return default


def test_a_job_with_no_options_uses_the_newest_fitted_default(runtime):
    default = F.load_default("classification")
    table, request, rows = _run(runtime, {"backbones": list(TOY_ZOO), "bootstrap": 0, "subset_size": 0})
    agg = request["resolved"]["aggregation"]
    ranker = agg["ranker"]
    path = F.DEFAULTS_DIR / f"classification-v{default.version}.json"
    assert ranker["name"] == default.name and ranker["version"] == default.version
    assert ranker["digest"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ranker["ground_truth_digest"] == default.ground_truth_digest
    assert agg["method"] == default.aggregation and agg["weights"] == default.weights
    assert set(default.metrics) <= set(request["resolved"]["metrics"])  # the default's metrics are computed
    assert table["aggregation"]["ranker"]["name"] == default.name
    assert table["aggregation"]["method"] == default.aggregation
    # the table is the fit's combination of the stored values at the chosen layers
    chosen = {r["backbone_id"]: r["best_layer"] for r in table["table"]}
    values: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        values.setdefault((r.backbone_id, r.layer), {})[r.metric] = np.nan if r.value is None else r.value
    head = {(b, m): v for (b, _), vals in values.items() for m, v in vals.items()}  # head metrics: one layer
    pool = {b: {m: values[(b, chosen[b])].get(m, head.get((b, m))) for m in default.metrics} for b in chosen}
    expected = F.combine(pool, default.weights, default.directions, default.combination)
    got = {r["backbone_id"]: r["aggregate"] for r in table["table"]}
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_a_deployment_refit_wins_and_a_request_with_metrics_gets_their_rank_mean(runtime):
    refit = _deployment_default(runtime, {"gbc": 1.0})
    table, request, rows = _run(runtime, {"backbones": list(TOY_ZOO), "bootstrap": 0, "subset_size": 0})
    agg = request["resolved"]["aggregation"]
    assert agg["ranker"]["name"] == refit.name and agg["method"] == "zscore_weighted"
    assert agg["ranker"]["digest"] == F.file_digest("classification", refit.version, runtime.settings.rankers_dir)
    gbc = {r["backbone_id"]: r["scores"]["gbc"]["raw"] for r in table["table"]}
    order = sorted(gbc, key=lambda b: -gbc[b])
    assert [r["backbone_id"] for r in sorted(table["table"], key=lambda r: r["rank"])] == order
    z = A.zscores([gbc[b] for b in TOY_ZOO])
    assert [next(r["aggregate"] for r in table["table"] if r["backbone_id"] == b) for b in TOY_ZOO] == \
        pytest.approx(z.tolist(), abs=1e-4)

    table, request, _ = _run(runtime, {"backbones": list(TOY_ZOO), "metrics": ["logme", "gbc"], "bootstrap": 0,
                                       "subset_size": 0})
    agg = request["resolved"]["aggregation"]
    assert agg["method"] == "rank_mean" and agg["ranker"] is None and "names its metrics" in agg["note"]
    assert table["aggregation"]["method"] == "rank_mean" and table["aggregation"]["ranker"] is None
    assert "names its metrics" in table["aggregation"]["note"]


def test_duplicate_taps_are_scored_once(runtime, monkeypatch):
    from app.services.rankings.stages import score as score_stage

    seen: list[tuple[int, str]] = []
    real = score_stage.metric_value

    def counted(name, *args, **kwargs):
        feats = kwargs.get("features")
        seen.append((id(feats), name))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(score_stage, "metric_value", counted)
    table, request, rows = _run(runtime, {"backbones": ["zoo:cnn_small.toy_a"], "layers": "all",
                                          "metrics": ["logme", "gbc"], "bootstrap": 0, "subset_size": 0})
    by = {(r.layer, r.metric): r for r in rows}
    layers = {r.layer for r in rows}
    assert {"stage3", "pool"} <= layers  # global average pooling after stage 3: the same features
    for m in ("logme", "gbc"):
        assert by[("pool", m)].details.get("duplicate_of") == "stage3"
        assert by[("pool", m)].value == by[("stage3", m)].value
        assert by[("pool", m)].seconds == 0.0
        assert "duplicate_of" not in by[("stage1", m)].details
    computed = [name for _, name in seen if name in ("logme", "gbc")]
    assert len(computed) == 2 * (len(layers) - 1)  # every metric once per distinct tap


class _Inputs:
    def __init__(self, feats):
        self.feats = feats

    def resolve_layer(self, b, layer):
        return layer

    def scored(self, b, layer):
        return self.feats[b]


def test_degenerate_features_are_named_relative_and_absolute():
    rng = np.random.default_rng(0)
    feats = {f"b{i}": rng.normal(size=(40, 8)) * (0.3 + i) for i in range(4)}
    feats["random_init"] = 1e-3 + 5e-4 * rng.normal(size=(40, 8))  # tiny activations: the random trunk
    feats["constant"] = np.ones((40, 8))
    out = rank_stage.degenerate_backbones(_Inputs(feats), {b: "pool" for b in feats})
    assert set(out) == {"random_init", "constant"}
    assert "constant" in out["constant"] and "barely vary" in out["random_init"]
    # alone in a job only the absolute test applies
    alone = rank_stage.degenerate_backbones(_Inputs({"random_init": feats["random_init"]}), {"random_init": "pool"})
    assert alone == {}


def test_a_degenerate_backbone_is_flagged_and_its_similarity_withheld(runtime, monkeypatch):
    real = rank_stage.degenerate_backbones
    monkeypatch.setattr(rank_stage, "degenerate_backbones",
                        lambda inputs, layers: {**real(inputs, layers), TOY_ZOO[0]: "test: forced"})
    table, _, _ = _run(runtime, {"backbones": list(TOY_ZOO), "bootstrap": 0, "subset_size": 0})
    row = next(r for r in table["table"] if r["backbone_id"] == TOY_ZOO[0])
    assert "degenerate_features" in row["flags"] and "far_domain" not in row["flags"]
    assert all(v is None for v in row["similarity"].values())
    assert any("degenerate features" in w for w in table["warnings"])


def test_the_subset_explains_its_scores_and_where_it_stopped(runtime):
    table, _, _ = _run(runtime, {"backbones": list(TOY_ZOO), "bootstrap": 0, "subset_size": 2})
    subset = table["subset"]
    assert "Greedy forward selection" in subset["explanation"] and "stopped" in subset["explanation"]
    first = subset["steps"][0]
    assert first["gain"] is None and "nothing before it" in first["why"] and "standardised" in first["why"]
    for step in subset["steps"][1:]:
        assert step["gain"] is not None and f"{step['gain']:+.4g}" in step["why"]
