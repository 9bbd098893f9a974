"""Stage 1, embed: every (backbone, layer) over the target's train split, into the content-addressed cache
(a repeated question costs a lookup). The source head's outputs (softmax, logits) that the metrics read come from
the same forward pass and are cached like layers."""

from __future__ import annotations

import time
import uuid
from typing import Any

from app.runtime import Runtime
from app.services.rankings.inputs import RankingInputs


def embed_unit(runtime: Runtime, job_id: uuid.UUID, backbone_id: str) -> dict[str, Any]:
    """Embed the target's train split with one backbone at the job's layers (cache-aware)."""
    inputs = RankingInputs.load(runtime, job_id)
    try:
        return _embed(inputs, backbone_id)
    finally:
        inputs.close()  # the samples file the forward passes read


def _embed(inputs: RankingInputs, backbone_id: str) -> dict[str, Any]:
    if inputs.plan.is_features:  # a feature set: nothing to embed; reading it checks it still aligns
        layers = inputs.layers(backbone_id)
        return {"backbone": backbone_id, "rows": int(len(inputs.embeddings(backbone_id, layers)[layers[0]])),
                "cached": True}
    started = time.perf_counter()
    layers = inputs.layers(backbone_id)
    inputs.embed(backbone_id, layers)  # the layers and the head outputs the metrics read: one forward pass
    return {"backbone": backbone_id, "layers": layers, "seconds": time.perf_counter() - started}
