"""The verdict stage: paired fine-tune − scratch statistics per probed candidate, Holm across them."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from app.db.session import unit_of_work
from app.db.tables import ProbeRun, VerdictRow
from app.db.upsert import upsert
from app.runtime import Runtime
from app.services import ranking_inputs as inputs
from app.services.ranking_plan import Plan


def share_scratch_runs(runtime: Runtime, plan: Plan, candidates: list[str], best_layers: dict[str, str]) -> None:
    """Copy each scratch group's runs to the group's other candidates (rows say where they came from)."""
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for b in candidates:
        layer = inputs._probe_layer(runtime, plan, b, best_layers[b])
        groups[inputs.scratch_group(runtime, plan, b, layer)].append((b, layer))
    with unit_of_work(runtime.sessions) as session:
        runs = {(r.backbone_id, r.seed): r for r in session.scalars(
            select(ProbeRun).where(ProbeRun.job_id == plan.job_id, ProbeRun.arm == "scratch"))}
        for members in groups.values():
            owner = members[0][0]
            for b, layer in members[1:]:
                for seed in range(plan.probe.seeds if plan.probe else 0):
                    source = runs.get((owner, seed))
                    if source is None:
                        continue
                    upsert(session, ProbeRun, {"job_id": plan.job_id, "backbone_id": b, "arm": "scratch",
                                               "seed": seed},
                           {"layer": layer, "metric": source.metric, "steps": source.steps,
                            "seconds": source.seconds, "curve": source.curve,
                            "details": {**(source.details or {}), "shared_from": owner}})


def verdict_stage(runtime: Runtime, plan: Plan, candidates: list[str]) -> None:
    """Verdicts of one job's probed candidates. The reported p-value is the paired t-test's, Holm-adjusted:
    with the default 5 seeds a one-sided Wilcoxon cannot go below 1/32, so after Holm over two or more
    candidates it could never be significant; both tests, raw and adjusted, stay in the details."""
    from app.probes.verdict import judge

    assert plan.probe is not None
    by_candidate: dict[str, dict[str, dict[int, float]]] = {c: defaultdict(dict) for c in candidates}
    steps: dict[str, int] = {}
    metric_name = None
    with runtime.sessions() as session:
        for run in session.scalars(select(ProbeRun).where(ProbeRun.job_id == plan.job_id)):
            if run.backbone_id in by_candidate and run.metric is not None:
                by_candidate[run.backbone_id][run.arm][run.seed] = run.metric
                steps[run.backbone_id] = max(steps.get(run.backbone_id, 0), run.steps)
                metric_name = metric_name or (run.details or {}).get("metric_name")
    results = judge({c: dict(v) for c, v in by_candidate.items()}, margin=plan.probe.margin, seed=plan.seed,
                    metric_name=metric_name, budget_steps={c: plan.probe.budget_steps for c in candidates},
                    min_seeds=min(5, plan.probe.seeds), test="t")
    with unit_of_work(runtime.sessions) as session:
        for r in results:
            upsert(session, VerdictRow, {"job_id": plan.job_id, "backbone_id": r.backbone_id},
                   {"verdict": r.verdict, "delta_mean": r.delta_mean, "ci_low": r.ci_low, "ci_high": r.ci_high,
                    "p_value": r.p_value, "n_seeds": r.n_seeds, "text": r.text, "details": r.details})
