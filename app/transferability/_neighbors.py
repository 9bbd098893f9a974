"""Exact, order-independent nearest-neighbour lists for the k-NN metrics (inputs already validated).

The neighbours of a row are all rows (itself included) in the total order of the key
``(squared distance, label code, row index)``, where the squared distance of rows ``a`` and ``b`` is
``((a - b) ** 2).sum()`` evaluated element-wise in float64. That value depends on the two rows only — not
on where they sit in the matrix or which other rows are present — so the order of the neighbours of a row
is the same in a dataset and in any resample of it (bootstrap copies included: copies of one row are at
distance exactly 0 from each other). The label code as second key makes a tie of equal distances resolve
the same way whatever the row order, so the k-NN vote is invariant to permuting the rows.

Finding them costs one n×n Gram matrix: ``‖a‖² + ‖b‖² − 2a·b`` ranks the candidates, the exact distance is
recomputed for the ``m`` nearest by that estimate, and the prefix of the exact order that the estimate's
rounding error cannot disturb is reported as valid. Rows that need more than their valid prefix are
recomputed against every row (:func:`full_row`).

:func:`shared_neighbor_lists` remembers the lists of recent inputs in this process, by content: a ranking
job's k-NN accuracy, the target's k-NN difficulty and the rank stage's bootstrap kernel read the neighbours
of the same last-layer features, and compute them once. A list of ``m'`` neighbours serves any ``m ≤ m'``
(its first ``m`` entries, valid where the longer list's were): every consumer reads only the valid prefix
and completes a row from its whole order beyond it, so the metric values are the same either way.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

from ._linalg import single_thread_blas

__all__ = ["NeighborLists", "neighbor_lists", "shared_neighbor_lists", "full_row", "others"]

#: the shortest list :func:`shared_neighbor_lists` computes (the bootstrap kernel's), so one computation
#: serves every consumer
SHARED_MIN_LIST = 48
#: bytes of remembered lists (their inputs included) kept per process, least recently used dropped first
SHARED_BYTES = 256 * 2**20

_EPS = float(np.finfo(np.float64).eps)
_BLOCK_ELEMENTS = 2**17  # elements per temporary block (1 MiB of float64: it stays in cache, no page faults)


class NeighborLists:
    """The first ``m`` neighbours of every row, in the exact order (see the module docstring).

    Attributes
    ----------
    index : ndarray (n, m) int64
        Neighbour row indices, nearest first (a row is its own neighbour at distance 0).
    sq_dist : ndarray (n, m) float64
        Their squared distances.
    valid : ndarray (n,) int64
        How many leading entries of each row's list are certainly in the exact order over *all* rows; the
        entries after them may not be the next neighbours.
    """

    def __init__(self, x: np.ndarray, codes: np.ndarray, index: np.ndarray, sq_dist: np.ndarray,
                 valid: np.ndarray) -> None:
        self.x = x
        self.codes = codes
        self.index = index
        self.sq_dist = sq_dist
        self.valid = valid
        self._full: dict[int, np.ndarray] = {}

    def prefix(self, m: int) -> NeighborLists:
        """The first ``m`` entries of every row's list (valid where these were); whole rows are shared."""
        if m >= self.index.shape[1]:
            return self
        out = NeighborLists(self.x, self.codes, self.index[:, :m], self.sq_dist[:, :m], np.minimum(self.valid, m))
        out._full = self._full
        return out

    @property
    def nbytes(self) -> int:
        return int(self.x.nbytes + self.codes.nbytes + self.index.nbytes + self.sq_dist.nbytes)

    def full(self, i: int) -> np.ndarray:
        """Every row, in the exact order of row ``i``'s neighbours (computed once per row)."""
        if i not in self._full:
            self._full[i] = full_row(self.x, self.codes, i)
        return self._full[i]


def _sq_dist(x: np.ndarray, i: int, rows: np.ndarray) -> np.ndarray:
    diff = x[rows] - x[i]
    return np.square(diff, out=diff).sum(axis=-1)


def full_row(x: np.ndarray, codes: np.ndarray, i: int) -> np.ndarray:
    """All row indices in the exact neighbour order of row ``i``."""
    rows = np.arange(x.shape[0])
    return np.lexsort((rows, codes, _sq_dist(x, i, rows)))


def neighbor_lists(x: np.ndarray, codes: np.ndarray, m: int) -> NeighborLists:
    """The first ``min(m, n)`` neighbours of every row of ``x`` (n, d) float64 with label codes ``codes``."""
    n, d = x.shape
    m = max(1, min(int(m), n))
    if m == n:  # every row is a candidate: the lists are the whole exact order
        index = np.stack([full_row(x, codes, i) for i in range(n)]) if n else np.zeros((0, 0), np.int64)
        sq_dist = np.stack([_sq_dist(x, i, index[i]) for i in range(n)]) if n else np.zeros((0, 0))
        return NeighborLists(x, codes, index, sq_dist, np.full(n, n, dtype=np.int64))
    sq = np.einsum("ij,ij->i", x, x)
    cand = np.empty((n, m), dtype=np.int64)
    bound = np.empty(n)  # every non-candidate's estimate is ≥ its row's bound
    rows_per_block = max(1, _BLOCK_ELEMENTS // n)
    with single_thread_blas():  # a thin product: threads only contend with the rest of the machine
        for start in range(0, n, rows_per_block):
            stop = min(n, start + rows_per_block)
            approx = x[start:stop] @ x.T
            approx *= -2.0
            approx += sq[None, :]
            approx += sq[start:stop, None]
            part = np.argpartition(approx, m - 1, axis=1)[:, :m]
            cand[start:stop] = part
            bound[start:stop] = np.take_along_axis(approx, part, axis=1).max(axis=1)
    # |estimate − exact| ≤ 8(d+2)ε(‖a‖² + ‖b‖²) bounds both roundings (Higham's γ_d for each dot product)
    tol = 8.0 * (d + 2) * _EPS * (sq + sq.max())
    exact = np.empty((n, m))
    step = max(1, _BLOCK_ELEMENTS // max(1, m * d))
    for start in range(0, n, step):
        stop = min(n, start + step)
        diff = x[cand[start:stop]] - x[start:stop, None, :]
        exact[start:stop] = np.square(diff, out=diff).sum(axis=-1)
    order = np.lexsort((cand, codes[cand], exact), axis=-1)
    index = np.take_along_axis(cand, order, axis=1)
    exact = np.take_along_axis(exact, order, axis=1)
    # a non-candidate's exact distance is > bound − tol: candidates strictly below that precede all of them
    valid = (exact < (bound - tol)[:, None]).sum(axis=1)
    return NeighborLists(x, codes, index, exact, valid.astype(np.int64))


_shared: OrderedDict[tuple, NeighborLists] = OrderedDict()
_shared_lock = threading.Lock()


def _digest(a: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(a).view(np.uint8), digest_size=16).hexdigest()


def shared_neighbor_lists(x: np.ndarray, codes: np.ndarray, m: int) -> NeighborLists:
    """:func:`neighbor_lists` of ``x`` and ``codes``, remembered in this process by their content (module
    docstring): the first ``min(m, n)`` neighbours of every row, from a list of at least
    :data:`SHARED_MIN_LIST`. An input whose lists would not fit in :data:`SHARED_BYTES` is not remembered
    (nor hashed or copied)."""
    n = x.shape[0]
    m = max(1, min(int(m), n))
    width = min(max(m, SHARED_MIN_LIST), n)
    if x.nbytes + codes.nbytes + n * width * 16 > SHARED_BYTES:  # too large to keep: no digest, no copy
        return neighbor_lists(x, codes, m)
    key = (x.shape, x.dtype.str, _digest(x), codes.dtype.str, _digest(codes))
    with _shared_lock:
        hit = _shared.get(key)
        if hit is not None and hit.index.shape[1] >= m:
            _shared.move_to_end(key)
            return hit.prefix(m)
    x, codes = x.copy(), codes.copy()  # the remembered lists must not see a caller's later in-place change
    x.flags.writeable = codes.flags.writeable = False
    lists = neighbor_lists(x, codes, max(m, SHARED_MIN_LIST))
    with _shared_lock:
        _shared[key] = lists
        _shared.move_to_end(key)
        while sum(v.nbytes for v in _shared.values()) > SHARED_BYTES:
            _shared.popitem(last=False)
    return lists.prefix(m)


def others(lists: NeighborLists, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and squared distances (n, k) of each row's ``k`` nearest *other* rows (``k < n``), in the
    exact order: a row is left out of its own list, its duplicates are not."""
    n = lists.index.shape[0]
    rows = np.arange(n)
    ok = (lists.index != rows[:, None]) & (np.arange(lists.index.shape[1])[None, :] < lists.valid[:, None])
    pick = np.argsort(~ok, axis=1, kind="stable")[:, :k]  # the first k usable entries, in order
    index = np.take_along_axis(lists.index, pick, axis=1)
    sq_dist = np.take_along_axis(lists.sq_dist, pick, axis=1)
    for i in np.flatnonzero(ok.sum(axis=1) < k):  # the valid prefix is too short: the whole order
        order = lists.full(int(i))
        order = order[order != i][:k]
        index[i], sq_dist[i] = order, _sq_dist(lists.x, int(i), order)
    return index, sq_dist
