"""Ranking jobs, from request to answer.

``requests``  validate a request against the catalogue and the capability matrix, idempotency, create, cancel
``plan``      the job's frozen plan, read back from its stored request
``inputs``    :class:`RankingInputs`: plan, specs, adapters and embeddings loaded once per unit
``job``       the handler: the order of the stages, and nothing else
``stages/``   embed, score, rank (+ intervals, baselines), subset, probe, verdict — one module each
``reads``     the ranked table of a job, lists with cursor pagination, a source's history across targets
``plots``     figures rendered from a job's stored rows

Orchestration only: the metrics, aggregation, probes and figures live in their domain packages; FastAPI and
Ray are never imported here.
"""

from app.services.rankings.job import run_ranking_job
from app.services.rankings.plots import render_plot
from app.services.rankings.reads import (
    backbone_history,
    dataset_rankings,
    list_rankings,
    ranking_body,
    read_ranking,
)
from app.services.rankings.requests import (
    cancel_ranking,
    create_ranking,
    extend_probes,
    rank_upload,
    validate_request,
)

__all__ = ["backbone_history", "cancel_ranking", "create_ranking", "dataset_rankings", "extend_probes",
           "list_rankings", "rank_upload", "ranking_body", "read_ranking", "render_plot", "run_ranking_job",
           "validate_request"]
