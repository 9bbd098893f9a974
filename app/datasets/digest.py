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

import numpy as np

DIGEST_VERSION = b"tscout-dataset/v1\x00"


def _records(sample_hashes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``uint8 (n, 32 + label bytes)``: each sample's hash followed by its label row, little-endian."""
    canonical = labels.astype("<i8") if labels.dtype.kind in "iu" else labels.astype("<f4")
    label_bytes = np.ascontiguousarray(canonical.reshape(len(labels), -1)).view(np.uint8)
    return np.ascontiguousarray(np.concatenate([np.asarray(sample_hashes, dtype=np.uint8), label_bytes], axis=1))


def canonical_order(sample_hashes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices that sort the samples by (content hash, label) bytes: independent of arrival order."""
    records = _records(sample_hashes, labels)
    keys = records.view(f"V{records.shape[1]}").ravel()  # a void compares as its raw bytes (memcmp)
    return np.argsort(keys, kind="stable").astype(np.int64)


def content_digest(*, modality: str, task_type: str, classes: list[str] | None, target_names: list[str] | None,
                   feature_dim: int | None, sample_hashes: np.ndarray, labels: np.ndarray) -> str:
    """The digest over samples and labels that are already in canonical order."""
    header = json.dumps(
        {"modality": modality, "task_type": task_type, "classes": classes, "target_names": target_names,
         "feature_dim": feature_dim},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    ).encode()
    h = hashlib.sha256(DIGEST_VERSION)
    h.update(len(header).to_bytes(8, "little"))
    h.update(header)
    h.update(_records(sample_hashes, labels).tobytes())
    return h.hexdigest()
