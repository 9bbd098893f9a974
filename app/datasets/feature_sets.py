"""Feature sets: precomputed-feature datasets of the same samples, one per source model, uploaded separately
and ranked as candidates for one target (LogME's and tllib's "bring your own features from each model").

Each dataset is stored in its own canonical order (by content hash), so two feature sets of the same rows
are generally stored in different orders. :func:`align` maps them back through the row each stored sample
had in its uploaded file (``upload_rows.npy``) and checks that both files carry the same labels row by row:
"the same samples" is a claim the caller makes, and the labels are the part of it that can be checked.
"""

from __future__ import annotations

import numpy as np

from app.datasets.errors import InvalidDataset
from app.datasets.stored import StoredDataset


class FeatureSetMismatch(InvalidDataset):
    """A feature set cannot be ranked for this target: other samples, other labels, or no row order."""


def _label_values(stored: StoredDataset, rows: np.ndarray) -> np.ndarray:
    """Labels of ``rows`` as values comparable across datasets (class names, not vocabulary indices)."""
    labels = stored.labels[rows]
    classes = stored.manifest.classes
    if stored.task_type == "classification" and classes:
        return np.asarray(classes, dtype=object)[labels.astype(np.int64)]
    return np.asarray(labels)


def align(target: StoredDataset, candidate: StoredDataset, *, name: str) -> np.ndarray:
    """``idx`` such that ``candidate.features()[idx][i]`` describes the sample stored at row ``i`` of
    ``target``. ``name`` names the candidate in errors. Raises :class:`FeatureSetMismatch`."""
    for which, stored in (("the target", target), (f"feature set {name}", candidate)):
        if stored.modality != "features":
            raise FeatureSetMismatch(f"{which} holds {stored.modality} samples; feature sets are precomputed-features "
                                     "datasets (.npz or .parquet with 'features')")
    if len(candidate) != len(target):
        raise FeatureSetMismatch(f"feature set {name} has {len(candidate)} rows, the target has {len(target)}; a "
                                 "feature set must describe the target's samples, in the same order")
    if candidate.task_type != target.task_type:
        raise FeatureSetMismatch(f"feature set {name} is a {candidate.task_type} dataset, the target is "
                                 f"{target.task_type}")
    target_rows, candidate_rows = target.upload_rows(), candidate.upload_rows()
    for which, rows in (("the target", target_rows), (f"feature set {name}", candidate_rows)):
        if rows is None:
            raise FeatureSetMismatch(f"{which} was stored before uploads kept their row order; delete it and "
                                     "upload the file again")
    position = np.empty(len(candidate), dtype=np.int64)
    position[candidate_rows] = np.arange(len(candidate), dtype=np.int64)
    idx = position[target_rows]
    want, got = _label_values(target, np.arange(len(target))), _label_values(candidate, idx)
    same = (want == got).all(axis=tuple(range(1, want.ndim))) if want.ndim > 1 else want == got
    if not np.all(same):
        stored_row = int(np.flatnonzero(~same)[0])
        upload_row = int(target_rows[stored_row])
        raise FeatureSetMismatch(
            f"feature set {name} has other labels than the target: row {upload_row} is labelled "
            f"{_show(got[stored_row])} there and {_show(want[stored_row])} in the target "
            f"({int((~same).sum())} of {len(target)} rows differ); a feature set must describe the target's "
            "samples, in the same order")
    return idx


def _show(value: object) -> str:
    if isinstance(value, np.ndarray):
        return repr(value.tolist())
    return repr(value.item() if isinstance(value, np.generic) else value)
