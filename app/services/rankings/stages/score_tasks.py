"""The score stage's units of work: one :class:`Task` per (layer, metric) value, with the score-cache key of
what it reads and a loader of its inputs — a layer's features and, as the metric's spec asks, the source
head's logits (RSA, DDS) or the card's stored source sample at that layer (OTCE, the similarity distances).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.services.rankings.inputs import RankingInputs
from app.services.rankings.plan import SIMILARITY_PREFIX
from app.services.rankings.score_keys import ScoreKeys, sample_digest


@dataclass
class Task:
    layer: str
    key: str  # the metric_scores row's metric column (a metric name, or prefixed for similarity/difficulty)
    name: str  # the registry's metric
    cache_key: str
    data: Callable[[], dict[str, Any]]
    dim: Callable[[], int]
    features: bool = False  # reads the backbone's features at ``layer`` (and nothing else of it)


def duplicate_layers(inputs: RankingInputs, backbone_id: str, layers: list[str]) -> dict[str, str]:
    """``{layer: its twin}`` for each layer whose scored features are bitwise those of a shallower layer
    (``stage3`` and a global-average ``pool`` after it, say): such a tap is scored once, at the twin."""
    import hashlib

    seen: dict[tuple[tuple[int, ...], str], str] = {}
    out = {}
    for layer in layers:
        x = np.ascontiguousarray(inputs.scored(backbone_id, layer))
        key = (x.shape, hashlib.sha256(x.tobytes()).hexdigest())
        if key in seen:
            out[layer] = seen[key]
        else:
            seen[key] = layer
    return out


def feature_task(inputs: RankingInputs, keys: ScoreKeys, backbone_id: str, layer: str, name: str) -> Task | None:
    """A layer metric's task: the features at ``layer`` and what else its spec reads — the source head's
    logits (RSA, DDS), or the card's stored source sample at ``layer`` (OTCE). ``None`` where that other
    input does not exist (no head, no stored sample): the metric has no value there."""
    from app.transferability import METRICS

    inputs_of = METRICS[name].inputs
    digests = [keys.embedding(backbone_id, layer)]
    if "source_features" in inputs_of:
        source = inputs.source_statistics(backbone_id, layer)
        if source is None:
            return None
        digests.append(sample_digest(*source))
        return Task(layer, name, name, keys.key(name, digests), _labelled_pair(inputs, backbone_id, layer, source),
                     lambda: int(inputs.scored(backbone_id, layer).shape[1]), features=True)
    extra: dict[str, Any] = {}
    if "source_logits" in inputs_of:
        logits = inputs.source_logits(backbone_id)
        if logits is None:
            return None
        digests.append(keys.embedding(backbone_id, head_layer("source_logits")))
        extra["source_logits"] = logits[inputs.rows]
    return Task(layer, name, name, keys.key(name, digests),
                 lambda: {"features": inputs.scored(backbone_id, layer), **inputs.target(), **extra},
                 lambda: int(inputs.scored(backbone_id, layer).shape[1]), features=True)


def head_layer(output: str) -> str:
    """The embedding cache's pseudo-layer of a source-head input (``source_probs``, ``source_logits``)."""
    from app.embeddings.pipeline import HEAD_INPUTS

    return HEAD_INPUTS[output]


def _labelled_pair(inputs: RankingInputs, backbone_id: str, layer: str,
                   source: tuple[np.ndarray, np.ndarray]) -> Callable[[], dict[str, Any]]:
    """The inputs of a metric between the card's labelled source sample and the labelled target (OTCE, OTDD)."""
    return lambda: {"source_features": source[0], "source_labels": source[1],
                    "target_features": inputs.scored(backbone_id, layer), "target_labels": inputs.labels}


def similarity_tasks(inputs: RankingInputs, keys: ScoreKeys, backbone_id: str, layer: str,
                     names: tuple[str, ...]) -> list[Task]:
    """The domain-similarity tasks at ``layer``: each distance between the card's stored source sample there
    and the target (none when the card stores no sample at that layer)."""
    from app.transferability import METRICS

    source = inputs.source_statistics(backbone_id, layer)
    if source is None:
        return []
    src_feats, src_labels = source
    digests = [keys.embedding(backbone_id, layer), sample_digest(src_feats, src_labels)]
    tasks = []
    for name in names:
        if "source_labels" in METRICS[name].inputs:
            data = _labelled_pair(inputs, backbone_id, layer, source)
        else:
            def data(layer: str = layer) -> dict[str, Any]:
                return {"a": src_feats, "b": inputs.scored(backbone_id, layer)}
        tasks.append(Task(layer, SIMILARITY_PREFIX + name, name, keys.key(name, digests), data,
                           lambda: int(src_feats.shape[1])))
    return tasks
