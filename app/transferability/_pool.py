"""Validation and min–max arithmetic shared by the pool-level combinations (ETran, NCTI).

A pool-level score is defined over a set of candidate models scored on one target: each member's
per-model parts (registry metrics) are min–max normalised across the pool and then combined. The value of
one member therefore depends on the whole pool; it is undefined for a pool of one and not comparable
across pools. What lives here: the checks and the normalisation. The combinations themselves live with
their metric (``etran.etran_combine``, ``ncti.ncti_combine``); the catalogue of combinations is
``registry.POOL_SCORES``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

__all__ = ["pool_parts", "minmax"]


def pool_parts(parts: object, required: tuple[str, ...], combination: str) -> tuple[list[str], dict[str, np.ndarray]]:
    """Check ``parts`` = {model: {part name: value}} and return (model names, part name → values array).

    Raises ``ValueError`` for a pool of fewer than two models, a missing part, or a non-finite value.
    """
    if not isinstance(parts, Mapping):
        raise ValueError(
            f"{combination}: parts must be a mapping {{model: {{{', '.join(required)}: value}}}}, "
            f"got {type(parts).__name__}"
        )
    models = list(parts)
    if len(models) < 2:
        raise ValueError(
            f"{combination} is a pool-level score: it needs at least 2 candidate models, got {len(models)}"
        )
    columns: dict[str, list[float]] = {name: [] for name in required}
    for model in models:
        row = parts[model]
        if not isinstance(row, Mapping):
            raise ValueError(f"{combination}: parts[{model!r}] must be a mapping of part name to value")
        for name in required:
            if name not in row:
                raise ValueError(f"{combination}: model {model!r} lacks part {name!r} (needs {list(required)})")
            try:
                value = float(row[name])
            except (TypeError, ValueError):
                raise ValueError(f"{combination}: parts[{model!r}][{name!r}] is not a number: {row[name]!r}") from None
            if not math.isfinite(value):
                raise ValueError(f"{combination}: parts[{model!r}][{name!r}] is not finite ({value!r})")
            columns[name].append(value)
    return models, {name: np.asarray(vals, dtype=np.float64) for name, vals in columns.items()}


def minmax(values: np.ndarray, name: str, combination: str) -> np.ndarray:
    """(v − min) / (max − min) over the pool, as the references' ``scale``; raises when max == min."""
    lo, hi = float(values.min()), float(values.max())
    if hi == lo:
        raise ValueError(
            f"{combination}: every model of the pool has the same {name} ({lo!r}); its min–max "
            "normalisation divides by zero (the reference returns NaN)"
        )
    return (values - lo) / (hi - lo)
