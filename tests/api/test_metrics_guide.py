"""``GET /v1/metrics`` explains every metric: meaning, direction and range, for every registered metric."""

from __future__ import annotations

from app.transferability import METRICS
from app.transferability.guide import GUIDE


def test_every_registered_metric_is_explained():
    assert set(GUIDE) == set(METRICS), (sorted(set(METRICS) - set(GUIDE)), sorted(set(GUIDE) - set(METRICS)))
    for name, spec in METRICS.items():
        if spec.direction == "lower_is_better":
            assert "lower" in GUIDE[name].range, name


def test_metrics_endpoint_serves_meaning_direction_and_range(client):
    body = client.get("/v1/metrics").json()
    entries = {m["name"]: m for m in body["metrics"]}
    assert set(entries) == set(METRICS)
    for entry in entries.values():
        assert entry["meaning"] and entry["range"] and entry["direction"]
    assert entries["hscore"]["range"].startswith("[0, C-1]")
    # the pool-level scores a ranking may name, with their parts; the peers' metrics left out, with why
    pools = {p["name"]: p for p in body["pool_scores"]}
    assert set(pools) == {"etran", "ncti"} and pools["ncti"]["parts"] == ["ncti_seli", "ncti_ncc", "ncti_vc"]
    assert all(entries[part]["pool"] == name for name, p in pools.items() for part in p["parts"])
    assert "emms" in body["not_provided"]
    assert entries["rsa"]["needs_source_head"] and not entries["rsa"]["head_only"] and entries["leep"]["head_only"]


def test_readme_table_matches_the_guide():
    from tests.kits import REPO

    readme = (REPO / "README.md").read_text()
    table = readme.split("<!-- metrics-table -->\n", 1)[1].split("\n<!-- /metrics-table -->", 1)[0]
    rows = [line for line in table.splitlines()[2:]]
    assert len(rows) == len(METRICS)
    for row, (name, spec) in zip(rows, METRICS.items(), strict=True):
        guide = GUIDE[name]
        assert row == (f"| `{name}` | {spec.kind} | {spec.direction.replace('_', ' ')} | {guide.range} | "
                       f"{guide.meaning} |"), name
