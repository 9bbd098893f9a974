"""Dataset statistics recorded at ingest (the ``stats`` of ``GET /v1/datasets/{id}``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.datasets.collected import Collected
from app.datasets.labels import ParsedLabels
from app.enums import TaskType


def summary(values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {
        "min": float(v.min()),
        "max": float(v.max()),
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "p95": float(np.quantile(v, 0.95)),
    }


def label_stats(parsed: ParsedLabels) -> dict[str, Any]:
    labels = parsed.labels
    if parsed.task_type == TaskType.classification:
        counts = np.bincount(labels, minlength=len(parsed.classes or []))
        return {"classes": [{"name": c, "count": int(k)} for c, k in zip(parsed.classes or [], counts, strict=True)]}
    if parsed.task_type == TaskType.multilabel:
        positives = labels.sum(axis=0)
        return {"classes": [{"name": c, "count": int(k)} for c, k in zip(parsed.target_names or [], positives,
                                                                          strict=True)]}
    return {
        "targets": [
            {"name": name, "mean": float(col.mean()), "std": float(col.std()), "min": float(col.min()),
             "max": float(col.max())}
            for name, col in zip(parsed.target_names or [], labels.T.astype(np.float64), strict=True)
        ]
    }


def dataset_stats(c: Collected, *, digest: str, split_info: dict[str, Any]) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "format": c.format,
        "modality": c.modality,
        "task_type": c.parsed.task_type,
        "num_samples": len(c.parsed.labels),
        "num_classes": c.parsed.num_classes,
        "target_names": c.parsed.target_names,
        "digest": digest,
        "split": {"train": split_info["train"], "val": split_info["val"]},
        **label_stats(c.parsed),
        **c.file_notes(),
    }
    if c.modality == "image":
        stats["images"] = {
            "width": summary(c.sample_stats["width"]),
            "height": summary(c.sample_stats["height"]),
            "source_formats": c.counters["source_formats"],
            "reencoded": c.counters["reencoded"],
            "unlisted_images": c.counters["unlisted_images"],
            "manifest": c.counters["manifest"],
        }
    elif c.modality == "text":
        stats["text"] = {
            "chars": summary(c.sample_stats["chars"]),
            "text_column": c.counters["text_column"],
            "label_columns": c.counters["label_columns"],
        }
    else:
        stats["features"] = {"dim": c.counters["feature_dim"], "label_key": c.counters["label_key"]}
    return stats
