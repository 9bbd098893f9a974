"""The probe stage over real HTTP: paired seeds in rounds until each verdict settles (or hits its cap),
verdicts that say what was run, and identical probe units reused across jobs instead of trained again."""

from __future__ import annotations

import pytest

from app.probes.sequential import STOP_REASONS
from tests.kits.rankings import TOY_ZOO, image_zip, toy_models_dir, upload, wait_for

pytestmark = pytest.mark.slow
SEQUENTIAL = {"top_k": 2, "first_round": 4, "round_size": 2, "max_seeds": 6, "budget_steps": 4,
              "lr_grid": [0.003], "batch_size": 16, "arms": ["finetune", "scratch"]}


@pytest.fixture
def server(live_server_factory, tmp_path):
    return live_server_factory(models_dir=toy_models_dir(tmp_path / "models"))


def _runs(server, job_id):
    import uuid

    from sqlalchemy import select

    from app.db.tables import ProbeRun

    with server.runtime.sessions() as s:
        return list(s.scalars(select(ProbeRun).where(ProbeRun.job_id == uuid.UUID(job_id))))


def test_sequential_rounds_record_what_was_run_and_a_second_job_reuses_every_run(server):
    with server.client() as c:
        dataset = upload(c, image_zip(per_class=12), "target.zip")
        body = {"dataset_id": dataset, "backbones": list(TOY_ZOO), "metrics": ["logme"], "bootstrap": 0,
                "subset_size": 0, "probe": SEQUENTIAL}
        created = c.post("/v1/rankings", json=body).json()
        assert created["planned"]["units"] == {"embed": 3, "score": 3, "probe_candidates": 2,
                                               "probe_first_round": 2 * 2 * 4, "probe_at_most": 2 * 2 * 6}
        first = wait_for(c, created["id"])
        assert first["status"] == "SUCCEEDED", first["error"]
        probed = [row for row in first["table"] if row["verdict"]]
        assert len(probed) == 2  # top_k means k: no suspicious candidates unless asked
        for row in probed:
            v, d = row["verdict"], row["verdict"]["details"]
            assert d["stop_reason"] in STOP_REASONS
            assert 1 <= d["rounds"] <= 2 and d["design"]["schedule"] == [4, 6]
            assert set(d["arms"]) == {"finetune", "scratch"}
            seeds = d["arms"]["finetune"]["seeds"]
            assert seeds == list(range(len(seeds))) and len(seeds) in (4, 6)
            assert d["arms"]["finetune"]["steps_run"] and d["arms"]["scratch"]["learning_rates"]
            assert v["n_seeds"] <= 6 and v["text"]
            if v["verdict"] == "inconclusive":
                assert d["stop_reason"] != "settled"
        trained = _runs(server, first["id"])
        assert trained and not any("reused_from" in (r.details or {}) for r in trained)

        created = c.post("/v1/rankings", json=body).json()  # same question, a new job
        assert created["planned"]["estimated_seconds"]["probe_at_most"] > 0
        second = wait_for(c, created["id"])
        assert second["status"] == "SUCCEEDED", second["error"]
        again = _runs(server, second["id"])
        assert len(again) == len(trained)
        assert all("reused_from" in (r.details or {}) or (r.details or {}).get("shared_from") for r in again)
        scratch = [r for r in again if r.arm == "scratch"]
        assert scratch and all("reused_from" in (r.details or {}) or (r.details or {}).get("shared_from")
                               for r in scratch)
        assert [(r["backbone_id"], r["verdict"]["verdict"]) for r in second["table"] if r["verdict"]] == \
            [(r["backbone_id"], r["verdict"]["verdict"]) for r in first["table"] if r["verdict"]]


def test_a_fixed_design_runs_exactly_its_seeds_in_one_round(server):
    with server.client() as c:
        dataset = upload(c, image_zip(per_class=10), "target.zip")
        probe = {"top_k": 1, "seeds": 3, "budget_steps": 3, "lr_grid": [0.003], "batch_size": 16,
                 "arms": ["finetune", "scratch"]}
        job = wait_for(c, c.post("/v1/rankings", json={"dataset_id": dataset, "backbones": list(TOY_ZOO),
                                                        "metrics": ["logme"], "bootstrap": 0, "probe": probe}
                                 ).json()["id"])
        assert job["status"] == "SUCCEEDED", job["error"]
        (row,) = [r for r in job["table"] if r["verdict"]]
        assert row["verdict"]["n_seeds"] <= 3 and row["verdict"]["details"]["rounds"] == 1


def test_both_designs_at_once_are_refused(server):
    with server.client() as c:
        dataset = upload(c, image_zip(per_class=6), "target.zip")
        r = c.post("/v1/rankings", json={"dataset_id": dataset, "probe": {"seeds": 5, "max_seeds": 9}})
        assert r.status_code == 422 and "seeds" in r.json()["detail"]


def test_extending_a_finished_ranking_adds_seeds_and_reuses_every_stored_run(server):
    with server.client() as c:
        dataset = upload(c, image_zip(per_class=12), "target.zip")
        body = {"dataset_id": dataset, "backbones": list(TOY_ZOO), "metrics": ["logme"], "bootstrap": 0,
                "subset_size": 0, "probe": {**SEQUENTIAL, "top_k": 1}}
        first = wait_for(c, c.post("/v1/rankings", json=body).json()["id"])
        assert first["status"] == "SUCCEEDED", first["error"]
        (row,) = [r for r in first["table"] if r["verdict"]]
        before = {(r.backbone_id, r.arm, r.seed) for r in _runs(server, first["id"])}

        assert c.post(f"/v1/rankings/{first['id']}/probes", json={"max_seeds": 4}).status_code == 422
        headers = {"Idempotency-Key": "extend-1"}
        r = c.post(f"/v1/rankings/{first['id']}/probes", json={"max_seeds": 10}, headers=headers)
        assert r.status_code == 202, r.text
        assert r.json()["request"]["resolved"]["extends"] == first["id"]
        assert c.post(f"/v1/rankings/{first['id']}/probes", json={"max_seeds": 10},
                      headers=headers).json()["id"] == r.json()["id"]  # a retry: the same job
        second = wait_for(c, r.json()["id"])
        assert second["status"] == "SUCCEEDED", second["error"]
        (again,) = [x for x in second["table"] if x["verdict"]]
        assert again["backbone_id"] == row["backbone_id"]
        design = again["verdict"]["details"]["design"]
        assert design["max_seeds"] == 10 and design["final_test_seeds"] == 6  # the first job's test stays put
        runs = _runs(server, second["id"])
        for run in runs:  # every seed the first job ran is copied, never trained again
            if (run.backbone_id, run.arm, run.seed) in before:
                assert "reused_from" in (run.details or {}) or (run.details or {}).get("shared_from")
        if row["verdict"]["details"]["stop_reason"] == "max_seeds":
            assert again["verdict"]["n_seeds"] >= row["verdict"]["n_seeds"]

        unprobed = wait_for(c, c.post("/v1/rankings", json={**body, "probe": None}).json()["id"])
        assert c.post(f"/v1/rankings/{unprobed['id']}/probes", json={"max_seeds": 8}).status_code == 409


def test_linear_evidence_runs_through_the_job_and_says_who_decided(server):
    with server.client() as c:
        dataset = upload(c, image_zip(per_class=10), "target.zip")
        bad = c.post("/v1/rankings", json={"dataset_id": dataset, "probe": {
            "linear_evidence": True, "arms": ["finetune", "scratch"]}})
        assert bad.status_code == 422 and "linear" in bad.json()["detail"]
        probe = {**SEQUENTIAL, "top_k": 2, "arms": ["finetune", "scratch", "linear"], "linear_evidence": True}
        job = wait_for(c, c.post("/v1/rankings", json={"dataset_id": dataset, "backbones": list(TOY_ZOO),
                                                        "metrics": ["logme"], "bootstrap": 0, "subset_size": 0,
                                                        "probe": probe}).json()["id"])
        assert job["status"] == "SUCCEEDED", job["error"]
        probed = [r for r in job["table"] if r["verdict"]]
        assert len(probed) == 2
        for row in probed:
            v, d = row["verdict"], row["verdict"]["details"]
            assert d["stats"]["linear"] is not None and d["stats"]["linear"]["n"] >= 1  # the linear Δ was read
            assert "positive_linear" in d["p_holm"] and "linear" in d["arms"]
            if v["verdict"] == "inconclusive":
                assert d["decided_by"] is None
            else:
                assert d["decided_by"] in ("finetune", "linear")
            if d["decided_by"] == "linear":
                assert v["verdict"] == "positive" and "Decided by the linear probe" in v["text"]


HALVING = {**SEQUENTIAL, "top_k": 3, "first_round": 3, "max_seeds": 4, "budget_steps": 8,
           "halving": {"eta": 2, "finalists": 1, "min_steps": 2}}


def test_successive_halving_runs_short_rungs_first_and_judges_each_candidate_at_the_rung_it_reached(server):
    with server.client() as c:
        dataset = upload(c, image_zip(per_class=12), "target.zip")
        body = {"dataset_id": dataset, "backbones": list(TOY_ZOO), "metrics": ["logme"], "bootstrap": 0,
                "subset_size": 0, "probe": HALVING}
        created = c.post("/v1/rankings", json=body).json()
        units = created["planned"]["units"]
        assert units["probe_rungs"] == [{"steps": 2, "candidates": 3}, {"steps": 4, "candidates": 2},
                                        {"steps": 8, "candidates": 1}]
        assert units["probe_first_round"] == 3 * 2 * 3 + 2 * 2 * 3 + 1 * 2 * 3
        job = wait_for(c, created["id"])
        assert job["status"] == "SUCCEEDED", job["error"]
        probed = {r["backbone_id"]: r["verdict"] for r in job["table"] if r["verdict"]}
        assert len(probed) == 3
        runs = _runs(server, job["id"])
        assert {r.rung_steps for r in runs} <= {2, 4, 0}
        assert {r.backbone_id for r in runs if r.rung_steps == 2} == set(probed)  # every candidate starts short
        assert all(r.arm in ("finetune", "scratch") for r in runs if r.rung_steps)
        reached = {}
        for backbone, v in probed.items():
            d = v["details"]
            h = d["halving"]
            reached[backbone] = h["rung_steps"]
            assert h["full_steps"] == 8 and h["schedule"] == [[2, 3], [4, 2], [8, 1]]
            assert h["budget_steps"] == (h["rung_steps"] or 8)
            assert d["stats"]["n_candidates"] == 3 * 3  # Holm over candidates × rungs
            assert v["runs"] and {r["rung_steps"] for r in v["runs"]} == {h["rung_steps"]}
            assert set(d["arms"]["finetune"]["budget_steps"].values()) == {h["budget_steps"]}
            assert "Successive halving over 3 candidates in 3 rungs" in v["text"]
            if h["rung_steps"]:
                assert d["stop_reason"] in ("abandoned", "settled", "time_budget")
                assert d["rounds"] == 1
                if d["stop_reason"] == "abandoned":
                    assert "abandoned by successive halving" in v["text"]
                else:
                    assert v["verdict"] == "negative_transfer" or d["stop_reason"] == "time_budget"
        rungs = next(iter(probed.values()))["details"]["halving"]["rungs"]
        assert [r["steps"] for r in rungs] == [2, 4] and len(rungs[0]["candidates"]) == 3
        assert sum(1 for s in reached.values() if s == 0) <= 1  # one finalist

        again = wait_for(c, c.post("/v1/rankings", json=body).json()["id"])  # the same question again
        assert again["status"] == "SUCCEEDED", again["error"]
        copied = _runs(server, again["id"])
        assert len(copied) == len(runs)
        assert all("reused_from" in (r.details or {}) or (r.details or {}).get("shared_from") for r in copied)
        assert {r["backbone_id"]: r["verdict"]["verdict"] for r in again["table"] if r["verdict"]} == \
            {b: v["verdict"] for b, v in probed.items()}

        # an extension probes the named candidates at the full budget, reusing the finalist's runs
        finalist = [b for b, s in reached.items() if s == 0]
        r = c.post(f"/v1/rankings/{job['id']}/probes", json={"max_seeds": 4, "candidates": list(probed)})
        assert r.status_code == 202, r.text
        assert r.json()["request"]["probe"]["halving"] is None
        extended = wait_for(c, r.json()["id"])
        assert extended["status"] == "SUCCEEDED", extended["error"]
        assert all(x["verdict"]["details"]["halving"] is None for x in extended["table"] if x["verdict"])
        ext_runs = _runs(server, extended["id"])
        assert {x.rung_steps for x in ext_runs} == {0}
        assert all("reused_from" in (x.details or {}) or (x.details or {}).get("shared_from")
                   for x in ext_runs if x.backbone_id in finalist and x.arm == "finetune")

        fixed = {**HALVING, "first_round": None, "max_seeds": None, "round_size": None, "seeds": 3}
        r = c.post("/v1/rankings", json={**body, "probe": fixed})
        assert r.status_code == 422 and "halving" in r.json()["detail"]


def test_halving_options_are_checked():
    from pydantic import ValidationError

    from app.schemas.rankings import ProbeOptions

    with pytest.raises(ValidationError, match="min_steps"):
        ProbeOptions(budget_steps=20, halving={"min_steps": 30})
    with pytest.raises(ValidationError, match="eta"):
        ProbeOptions(halving={"eta": 1})
    with pytest.raises(ValidationError, match="halving runs the sequential design"):
        ProbeOptions(seeds=5, halving={})
    assert ProbeOptions(halving={}).halving.eta == 2
