"""The canonical sample order and the dataset's content digest.

A dataset's identity is its content: the stored (normalised) bytes of every sample, its label, and the
label vocabulary — not file names, archive member order, timestamps or the container format. Samples are
put in canonical order (sorted by the sha256 of their stored bytes, then their label) and the digest is

    sha256("tscout-dataset/v1" ‖ header JSON ‖ for each sample in canonical order: sha256(sample) ‖ label bytes)

where the header holds modality, task type, class and target names and the feature width, and label bytes
are the sample's row of the stored label array in little-endian form. So a zip and a tar.gz of the same
images and labels, in any order, get the same digest (and dedupe to the same dataset).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np

DIGEST_VERSION = b"tscout-dataset/v1\x00"


def _label_bytes(labels: np.ndarray) -> list[bytes]:
    canonical = labels.astype("<i8") if labels.dtype.kind in "iu" else labels.astype("<f4")
    rows = canonical.reshape(len(labels), -1)
    return [row.tobytes() for row in rows]


def canonical_order(sample_hashes: Sequence[bytes], labels: np.ndarray) -> np.ndarray:
    """Indices that sort the samples by (content hash, label): independent of arrival order."""
    keys = _label_bytes(labels)
    return np.asarray(sorted(range(len(keys)), key=lambda i: (sample_hashes[i], keys[i])), dtype=np.int64)


def content_digest(*, modality: str, task_type: str, classes: list[str] | None, target_names: list[str] | None,
                   feature_dim: int | None, sample_hashes: Sequence[bytes], labels: np.ndarray) -> str:
    """The digest over samples and labels that are already in canonical order."""
    header = json.dumps(
        {"modality": modality, "task_type": task_type, "classes": classes, "target_names": target_names,
         "feature_dim": feature_dim},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    ).encode()
    h = hashlib.sha256(DIGEST_VERSION)
    h.update(len(header).to_bytes(8, "little"))
    h.update(header)
    for sample_hash, label in zip(sample_hashes, _label_bytes(labels), strict=True):
        h.update(sample_hash)
        h.update(label)
    return h.hexdigest()
