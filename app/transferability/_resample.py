"""Bootstrap resamples as row multiplicities, for the metrics' resampled kernels (``*_resampled``).

A bootstrap resample ``idx`` of ``n`` rows is the multiset of rows with multiplicities
``counts = np.bincount(idx, minlength=n)``. A metric that is a function of weighted sufficient statistics
(Gram matrices, class sums, class counts, per-row terms) is computed exactly from the original rows and
``counts``, without materialising ``features[idx]``: a resampled kernel ``kernel(counts)`` returns what the
metric returns on ``(features[idx], labels[idx])`` up to floating-point rounding (the sums run in another
order), and raises the metric's ``ValueError`` on a resample the metric refuses (e.g. a single class).

Only the rows drawn at least once take part (:class:`Drawn`); labels are re-encoded over the classes
present in the resample, as :func:`~app.transferability._inputs.encode_labels` does for the materialised
rows, so a class missing from a resample disappears exactly as it does there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._inputs import check_counts

__all__ = ["Drawn", "drawn_rows", "weighted_gram"]


@dataclass(frozen=True)
class Drawn:
    """The rows a resample draws.

    Attributes
    ----------
    rows : ndarray (r,) int64
        Original indices of the rows drawn at least once, ascending.
    weights : ndarray (r,) float64
        Their multiplicities.
    n : int
        Rows of the materialised resample (the sum of the multiplicities).
    codes : ndarray (r,) int64
        Label codes re-encoded over the classes present (``0..C'-1``, in the original code order).
    class_counts : ndarray (C',) float64
        Materialised rows per present class.
    """

    rows: np.ndarray
    weights: np.ndarray
    n: int
    codes: np.ndarray
    class_counts: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(self.class_counts.shape[0])


def drawn_rows(counts: object, codes: np.ndarray | None, n_rows: int, *, min_classes: int = 2,
               classes: np.ndarray | None = None) -> Drawn:
    """Validate ``counts`` (one multiplicity per original row) and describe the drawn rows; with label
    ``codes``, re-encode them and refuse fewer than ``min_classes`` present classes (the message of
    ``encode_labels``; ``classes`` gives the original label values it names)."""
    c = check_counts(counts, n_rows)
    rows = np.flatnonzero(c)
    weights = c[rows].astype(np.float64)
    if codes is None:
        return Drawn(rows, weights, int(c.sum()), np.zeros(rows.shape[0], np.int64), np.array([c.sum()], float))
    present, local = np.unique(codes[rows], return_inverse=True)
    if present.shape[0] < min_classes:
        names = (classes[present] if classes is not None else present)[:5].tolist()
        raise ValueError(f"labels must contain at least {min_classes} distinct classes, got {present.shape[0]} "
                         f"({names})")
    local = local.reshape(-1).astype(np.int64)
    class_counts = np.bincount(local, weights=weights, minlength=present.shape[0])
    return Drawn(rows, weights, int(c.sum()), local, class_counts)


def weighted_gram(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``xᵀ diag(weights) x`` (BLAS ``syrk`` on the √weight-scaled rows)."""
    xs = x * np.sqrt(weights)[:, None]
    return xs.T @ xs


def weighted_outer(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``diag(√w) x xᵀ diag(√w)``: the outer Gram of the drawn rows, whose non-zero spectrum is that of the
    materialised rows' ``XXᵀ`` (copies of a row add only zero eigenvalues)."""
    xs = x * np.sqrt(weights)[:, None]
    return xs @ xs.T
