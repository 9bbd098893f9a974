"""Turning metric scores into a ranking: per-metric normalisation, aggregation, best layer per backbone,
bootstrap rank intervals, and greedy multi-source subsets.

Pure numpy: no web, database or executor imports. The ranking job (``app.services.ranking_job``) feeds it
the scores it persisted and stores what it returns.
"""

from app.ranking.aggregate import (
    AggregateResult,
    aggregate,
    choose_layers,
    normalise,
    rank_with_ties,
)
from app.ranking.bootstrap import bootstrap_rank_intervals, bootstrap_resamples, intervals_from_replicates
from app.ranking.subset import SubsetStep, greedy_subset

__all__ = [
    "AggregateResult",
    "SubsetStep",
    "aggregate",
    "bootstrap_rank_intervals",
    "bootstrap_resamples",
    "intervals_from_replicates",
    "choose_layers",
    "greedy_subset",
    "normalise",
    "rank_with_ties",
]
