"""Rankings whose candidates are feature sets: precomputed-features datasets of the target's samples, one per
source model, named ``features:<dataset id>`` in ``backbones`` and ranked like backbones (no embedding, no
probe: there is no model to run or fine-tune).

The target is the request's ``dataset_id`` (itself a features dataset, and a candidate only when listed);
each candidate must hold the target's samples in the same row order with the same labels
(:func:`app.datasets.feature_sets.align`). The request stores, per candidate, the dataset's artifact prefix,
digest and name (``resolved.feature_sets``), so the job reads them without a lookup and the table can be
read with the caller's names.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from app.datasets.feature_sets import FeatureSetMismatch, align
from app.datasets.stored import StoredDataset
from app.db.tables import Dataset
from app.errors import InvalidInput
from app.runtime import Runtime
from app.schemas.rankings import RankingCreate
from app.services.auth import Principal
from app.services.rankings.plan import FEATURES_PREFIX


def feature_set_id(dataset_id: Any) -> str:
    """The candidate id of a features dataset: ``features:<dataset id>``."""
    return f"{FEATURES_PREFIX}{dataset_id}"


def _candidate(session: Session, principal: Principal, backbone_id: str) -> Dataset:
    if not backbone_id.startswith(FEATURES_PREFIX):
        raise InvalidInput(f"backbones: {backbone_id!r} is a model, and a precomputed-features target ranks feature "
                           "sets: list features datasets of the same samples as 'features:<dataset id>'")
    raw = backbone_id.removeprefix(FEATURES_PREFIX)
    try:
        dataset_id = uuid.UUID(raw)
    except ValueError:
        raise InvalidInput(f"backbones: {backbone_id!r} does not name a dataset id after 'features:'") from None
    row = session.get(Dataset, dataset_id)
    if row is None or row.project_id != principal.project_id:
        raise InvalidInput(f"backbones: feature set {backbone_id!r}: dataset {dataset_id} not found in this project")
    return row


def resolve_feature_sets(session: Session, principal: Principal, runtime: Runtime, request: RankingCreate,
                         target: Dataset, max_candidates: int) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The candidate ids of a ranking of a features dataset, and what the job reads of each."""
    if request.probe is not None:
        raise InvalidInput("probe: feature sets have no model to fine-tune; set probe to null")
    if request.reference_backbone is not None:
        raise InvalidInput("reference_backbone: not applicable to a precomputed-features dataset")
    if request.backbones is None:
        rows = [target]
    elif not isinstance(request.backbones, list):
        raise InvalidInput("backbones: a precomputed-features target ranks feature sets, not catalogue backbones; "
                           "list them as 'features:<dataset id>' (or omit 'backbones' to score the target's own)")
    else:
        if len(request.backbones) > max_candidates:
            raise InvalidInput(f"backbones: {len(request.backbones)} feature sets; at most {max_candidates} per ranking")
        rows = [_candidate(session, principal, bid) for bid in request.backbones]
    stored_target = StoredDataset(runtime.store, target.artifact_key)
    sets: dict[str, dict[str, Any]] = {}
    for row in rows:
        bid = feature_set_id(row.id)
        if row.id != target.id:
            try:
                align(stored_target, StoredDataset(runtime.store, row.artifact_key), name=f"{bid} ({row.name})")
            except FeatureSetMismatch as exc:
                raise InvalidInput(f"backbones: {exc}") from None
        sets[bid] = {"dataset_id": str(row.id), "name": row.name, "prefix": row.artifact_key, "digest": row.digest,
                     "feature_dim": (row.stats or {}).get("features", {}).get("dim")}
    return list(sets), sets
