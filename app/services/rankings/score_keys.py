"""Score-cache keys of one ranking job's values (the score stage's and the bootstrap's): which keyword
arguments a job passes to a metric, and the digests of what the metric reads — computed without loading
any array, so a fully cached job loads no embedding. The cache itself is ``app.db.score_cache``."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from app.db.score_cache import rows_digest, score_cache_key
from app.services.rankings.inputs import RankingInputs
from app.services.rankings.plan import FEATURES_PREFIX


def metric_params(name: str, seed: int) -> dict[str, Any]:
    """The keyword arguments a job passes to metric ``name``: its ``job_kwargs`` and, where it takes one,
    ``random_state=seed``."""
    from app.transferability import METRICS

    spec = METRICS[name]
    return {**spec.job_kwargs, **({"random_state": seed} if spec.random_state else {})}


class ScoreKeys:
    """Score-cache keys of one job's values: the digests of what a metric reads, computed without loading
    any array (so a fully cached job loads no embedding)."""

    def __init__(self, inputs: RankingInputs) -> None:
        self.inputs = inputs
        self.rows = rows_digest(inputs.rows)

    def embedding(self, backbone_id: str, layer: str) -> str:
        """The embedding cache key of ``backbone_id`` at ``layer`` (or at the source head, ``SOURCE_PROBS``)."""
        plan = self.inputs.plan
        if backbone_id.startswith(FEATURES_PREFIX):
            other = plan.feature_sets.get(backbone_id)  # another dataset's features, aligned to the target
            extra = [other["digest"]] if other and other["prefix"] != plan.dataset_prefix else []
            payload = json.dumps(["features", plan.dataset_digest, backbone_id, layer, *extra])
            return hashlib.sha256(payload.encode()).hexdigest()
        from app.backbones.preprocess import preprocess_digest
        from app.embeddings.cache import cache_key

        spec = self.inputs.spec(backbone_id)
        if not spec.weights_digest:
            raise ValueError(f"backbone {backbone_id} has no weights digest; its scores cannot be cached")
        return cache_key(plan.dataset_digest, spec.weights_digest, layer, preprocess_digest(spec.preprocessing),
                         "train")

    def key(self, name: str, inputs: list[str], rows: str | None = None) -> str:
        """The cache key of metric ``name`` on ``inputs`` (digests) at the job's rows (or ``rows``)."""
        from app.transferability import METRICS

        plan = self.inputs.plan
        spec = METRICS[name]
        return score_cache_key(inputs=inputs, rows=rows or self.rows, task_type=plan.task_type, metric=name,
                               variant=spec.variant, version=spec.version, params=metric_params(name, plan.seed))


def sample_digest(features: np.ndarray, labels: np.ndarray) -> str:
    """sha256 of a stored source sample (features and labels, with their shapes and dtypes)."""
    h = hashlib.sha256()
    for arr in (features, labels):
        arr = np.ascontiguousarray(arr)
        h.update(json.dumps([str(arr.dtype), list(arr.shape)]).encode())
        h.update(arr.tobytes())
    return h.hexdigest()
