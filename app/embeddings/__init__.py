"""Batched inference with layer taps (``pipeline``) and the content-addressed embedding cache (``cache``).

May use ``app.db`` (the cache index) and ``app.storage``; never FastAPI or Ray.
"""

from app.embeddings.cache import SOURCE_PROBS, cache_key, embed_dataset, source_probs
from app.embeddings.pipeline import EmbedOptions, embed_samples, resolve_device

__all__ = ["SOURCE_PROBS", "EmbedOptions", "cache_key", "embed_dataset", "embed_samples", "resolve_device",
           "source_probs"]
