"""How a probe run is scored on held-out rows. Every *primary* metric is higher = better.

Classification: ``accuracy`` and ``macro_f1`` (scikit-learn's definition: the unweighted mean F1 over the
classes present in the true or the predicted labels, 0 where a class has no true or predicted member).
Regression: ``r2`` (uniform average over target columns, scikit-learn's default) and ``mae``. MAE is lower =
better, so it is reported but never primary.
"""

from __future__ import annotations

import numpy as np

TASK_TYPES = ("classification", "regression")
PRIMARY_METRICS = {"classification": ("accuracy", "macro_f1"), "regression": ("r2",)}


def check_task_type(task_type: str) -> str:
    task_type = str(task_type)
    if task_type not in TASK_TYPES:
        raise ValueError(f"probes support task types {TASK_TYPES}, got {task_type!r}")
    return task_type


def primary_metric(task_type: str, metric: str | None = None) -> str:
    """The metric a probe selects on and the verdict compares; ``metric=None`` picks the task's default."""
    allowed = PRIMARY_METRICS[check_task_type(task_type)]
    if metric is None:
        return allowed[0]
    if metric not in allowed:
        raise ValueError(f"metric {metric!r} cannot be the primary probe metric for {task_type}; use one of {allowed}")
    return metric


def classification_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """``accuracy`` and ``macro_f1`` of predicted class indices ``y_pred (n,)`` against ``y_true (n,)``."""
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"need equal, non-empty label arrays, got {y_true.shape} and {y_pred.shape}")
    classes = np.union1d(y_true, y_pred)
    f1 = []
    for c in classes:
        t, p = y_true == c, y_pred == c
        tp = float(np.sum(t & p))
        denom = 2 * tp + float(np.sum(~t & p)) + float(np.sum(t & ~p))
        f1.append(2 * tp / denom if denom else 0.0)
    return {"accuracy": float(np.mean(y_true == y_pred)), "macro_f1": float(np.mean(f1))}


def regression_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """``r2`` and ``mae`` of predictions ``(n, k)`` against targets ``(n, k)`` (1-D arrays are one column)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    y_true = y_true.reshape(len(y_true), -1)
    y_pred = y_pred.reshape(len(y_pred), -1)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"need equal, non-empty target arrays, got {y_true.shape} and {y_pred.shape}")
    ss_res = np.sum((y_true - y_pred) ** 2, axis=0)
    ss_tot = np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=0)
    # a constant column: perfect prediction scores 1, anything else 0 (scikit-learn's force_finite)
    r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), np.where(ss_res == 0, 1.0, 0.0))
    return {"r2": float(np.mean(r2)), "mae": float(np.mean(np.abs(y_true - y_pred)))}


def scores(task_type: str, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    if task_type == "classification":
        return classification_scores(y_true, y_pred)
    return regression_scores(y_true, y_pred)
