"""Batched inference with layer taps (``pipeline``) and the content-addressed embedding cache (``cache``).

The cache's index is a protocol (``EmbeddingIndex``) that the service implements over its table
(``app.db.embedding_index``): this package uses ``app.storage`` and never a database, FastAPI or Ray.
"""

from app.embeddings.cache import (
    SOURCE_PROBS,
    EmbeddingIndex,
    cache_key,
    embed_dataset,
    source_head,
    source_probs,
)
from app.embeddings.pipeline import HEAD_OUTPUTS, SOURCE_LOGITS, EmbedOptions, embed_samples

__all__ = ["HEAD_OUTPUTS", "SOURCE_LOGITS", "SOURCE_PROBS", "EmbedOptions", "EmbeddingIndex", "cache_key",
           "embed_dataset", "embed_samples", "source_head", "source_probs"]
