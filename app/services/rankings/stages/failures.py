"""One bad candidate does not sink a job: the embed and score units wrapped so that a backbone whose unit
raises is reported as failed (with its error) instead of failing the job, and the bookkeeping of those
failures.

A failed candidate keeps its place in the job's result document (``failed_backbones``: backbone →
``{"stage", "error"}``), appears in the table with ``status = "failed"``, and is left out of every later
stage; the job finishes with the others as ``SUCCEEDED`` with one warning per failure. Only when every
candidate fails does the job fail. Infrastructure errors (the database, memory) are not a backbone's fault
(``Unavailable``) and still fail the job, so that it is retried or reported as it should be.

The wrappers are module-level functions, so executors ship them to other processes by reference like any
unit. Nothing here ranks or scores.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.errors import Unavailable
from app.runtime import Runtime
from app.services.rankings.stages.embed import embed_unit
from app.services.rankings.stages.intervals import score_then_bootstrap

log = logging.getLogger("tscout.ranking")
_NOT_THE_BACKBONE = (SQLAlchemyError, Unavailable, MemoryError, KeyboardInterrupt, SystemExit)


class AllCandidatesFailed(RuntimeError):
    """Every candidate of the job failed; the message names each one with its error."""


def failure_text(exc: BaseException) -> str:
    """A one-line reason for the table: domain errors speak for themselves, others carry their type."""
    from app.backbones.errors import BackboneError
    from app.errors import DomainError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, DomainError | BackboneError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _guarded(stage: str, unit: Any, runtime: Runtime, job_id: uuid.UUID, backbone_id: str) -> dict[str, Any]:
    try:
        return unit(runtime, job_id, backbone_id)
    except _NOT_THE_BACKBONE:
        raise
    except Exception as exc:  # this backbone's own failure: the other candidates go on
        log.warning("job %s: %s of %s failed: %s", job_id, stage, backbone_id, exc, exc_info=True)
        return {"backbone": backbone_id, "failed": {"stage": stage, "error": failure_text(exc)[:1000]}}


def guarded_embed_unit(runtime: Runtime, job_id: uuid.UUID, backbone_id: str) -> dict[str, Any]:
    """:func:`~app.services.rankings.stages.embed.embed_unit`, reporting a failure instead of raising."""
    return _guarded("embed", embed_unit, runtime, job_id, backbone_id)


def guarded_score_unit(runtime: Runtime, job_id: uuid.UUID, backbone_id: str) -> dict[str, Any]:
    """:func:`~app.services.rankings.stages.intervals.score_then_bootstrap` (the scores, and the bootstrap
    replicates where the layer is known), reporting a failure instead of raising."""
    return _guarded("score", score_then_bootstrap, runtime, job_id, backbone_id)


def collect(results: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """``{backbone: {"stage", "error"}}`` for the units that reported a failure."""
    return {r["backbone"]: r["failed"] for r in results if isinstance(r, dict) and r.get("failed")}


def unrankable(raw: dict[str, dict[str, dict[str, float]]], backbones: list[str],
               metrics: list[str]) -> dict[str, dict[str, str]]:
    """Backbones for which no requested metric produced a finite value at any layer: nothing to rank them on."""
    import math

    out = {}
    for b in backbones:
        values = [v for layer in raw.get(b, {}).values() for m, v in layer.items() if m in metrics]
        if not any(math.isfinite(v) for v in values):
            out[b] = {"stage": "score", "error": "no requested metric could be computed for this backbone "
                                                 "(see the metric rows' details)"}
    return out


def warnings_for(failed: dict[str, dict[str, str]]) -> list[str]:
    return [f"backbone {b} failed in {f['stage']} and is not ranked: {f['error']}" for b, f in failed.items()]


def check_survivors(alive: list[str], failed: dict[str, dict[str, str]]) -> None:
    if not alive:
        raise AllCandidatesFailed("every candidate failed: " + "; ".join(
            f"{b} ({f['stage']}): {f['error']}" for b, f in failed.items()))
