"""Stage 6, verdict: paired fine-tune − scratch statistics per probed candidate, Holm across them →
positive / no_benefit / negative_transfer / inconclusive, with the text a user reads.

The reported p-value is the paired t-test's, Holm-adjusted: with 5 seeds a one-sided Wilcoxon cannot go
below 1/32, so after Holm over two or more candidates it could never be significant; both tests, raw and
adjusted, stay in the details.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from app.db.session import unit_of_work
from app.db.tables import ProbeRun, VerdictRow
from app.db.upsert import upsert
from app.services.rankings.inputs import RankingInputs


def verdict_stage(inputs: RankingInputs, candidates: list[str]) -> None:
    from app.probes.verdict import judge

    plan = inputs.plan
    assert plan.probe is not None
    by_candidate: dict[str, dict[str, dict[int, float]]] = {c: defaultdict(dict) for c in candidates}
    metric_name = None
    with inputs.runtime.sessions() as session:
        for run in session.scalars(select(ProbeRun).where(ProbeRun.job_id == plan.job_id)):
            if run.backbone_id in by_candidate and run.metric is not None:
                by_candidate[run.backbone_id][run.arm][run.seed] = run.metric
                metric_name = metric_name or (run.details or {}).get("metric_name")
    results = judge({c: dict(v) for c, v in by_candidate.items()}, margin=plan.probe.margin, seed=plan.seed,
                    metric_name=metric_name, budget_steps={c: plan.probe.budget_steps for c in candidates},
                    min_seeds=min(5, plan.probe.seeds), test="t")
    with unit_of_work(inputs.runtime.sessions) as session:
        for r in results:
            upsert(session, VerdictRow, {"job_id": plan.job_id, "backbone_id": r.backbone_id},
                   {"verdict": r.verdict, "delta_mean": r.delta_mean, "ci_low": r.ci_low, "ci_high": r.ci_high,
                    "p_value": r.p_value, "n_seeds": r.n_seeds, "text": r.text, "details": r.details})
