"""Strong simple baselines: leave-one-out k-NN accuracy and cross-validated linear-probe accuracy.

Both are accuracies in [0, 1]; higher is better (Sorkhei et al. 2025 find k-NN hard to beat).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from ._inputs import (
    EncodedLabels,
    as_numpy_matrix,
    check_counts,
    check_positive_int,
    check_random_state,
    encode_labels,
)
from ._neighbors import NeighborLists, others, shared_neighbor_lists

__all__ = ["knn_accuracy", "knn_accuracy_resampled", "linear_probe_accuracy", "loo_neighbors", "knn_loo_predictions"]


def loo_neighbors(x: np.ndarray, k: int, codes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices (n, k) of each sample's k nearest *other* samples (Euclidean, ascending).

    Only the sample itself is left out (its duplicates are neighbours at distance 0); equal distances are
    ordered by ``codes`` (label codes, when given), then by row — the exact order of ``_neighbors``.
    """
    codes = np.zeros(x.shape[0], dtype=np.int64) if codes is None else codes
    idx, sq_dist = others(shared_neighbor_lists(x, codes, k + 1 + _SLACK), k)
    return np.sqrt(sq_dist), idx


def knn_loo_predictions(neighbor_idx: np.ndarray, codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Majority vote of the neighbours' labels; a tie goes to the tied class with the nearest vote."""
    n, k = neighbor_idx.shape
    rows = np.arange(n)
    counts = np.zeros((n, n_classes))
    first = np.full((n, n_classes), k)
    for j in range(k - 1, -1, -1):  # nearer neighbours overwrite: first[i, c] = rank of c's nearest vote
        cls = codes[neighbor_idx[:, j]]
        np.add.at(counts, (rows, cls), 1.0)
        first[rows, cls] = j
    return (counts * (k + 1) + (k - first)).argmax(axis=1)


def knn_accuracy(features, labels, *, k: int = 5) -> float:
    """Leave-one-out k-nearest-neighbour accuracy.

    Each sample is classified by the majority label of its ``k`` nearest other samples (squared Euclidean
    distance, evaluated exactly per pair); a tie of votes goes to the tied class with the nearest vote.
    Neighbours at equal distance are taken in the order of their label (then of their row), so the value
    does not depend on the order of the samples; a duplicate of a sample is its neighbour at distance 0 (only
    the sample itself is left out). ``k`` is capped at ``n_samples - 1``.

    Parameters
    ----------
    features : array-like or Tensor of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    k : int, default=5

    Returns
    -------
    accuracy : float
        In [0, 1]; higher is better.

    References
    ----------
    .. [1] Sorkhei, Konuk, Smith. "k-NN as a Simple and Effective Estimator of Transferability",
       arXiv:2503.18528, 2025.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import knn_accuracy
    >>> f = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [9.0]])
    >>> round(knn_accuracy(f, [0, 0, 0, 1, 1, 1], k=1), 4)
    1.0
    """
    x = as_numpy_matrix(features, "features")
    enc = encode_labels(labels, x.shape[0])
    k = min(check_positive_int(k, "k"), x.shape[0] - 1)
    lists = shared_neighbor_lists(x, enc.codes, k + 1 + _SLACK)
    counts = np.ones(x.shape[0], dtype=np.int64)
    return _weighted_knn_accuracy(lists, counts, k, enc.n_classes)


#: neighbours kept beyond k + 1, so that ties and bootstrap duplicates rarely send a row to the full order
_SLACK = 8
#: neighbours kept per row for the bootstrap kernel: a resample leaves a row out with probability ~1/e, so a
#: row reaches k votes within its first ~2k + 2 neighbours; the rare row that does not is recomputed
_RESAMPLED_LIST = 48


def knn_accuracy_resampled(features, labels, *, k: int = 5) -> Callable[[np.ndarray], float]:
    """The bootstrap kernel of :func:`knn_accuracy`: ``kernel(counts)`` equals
    ``knn_accuracy(features[idx], labels[idx], k=k)`` for every ``idx`` with ``np.bincount(idx) == counts``.

    The neighbour lists are found once (one n×n distance computation); a resample only re-weights them: the
    copies of a row vote with their multiplicity, the other copies of the query row included (they are its
    neighbours at distance 0), and all copies of a row get the same prediction. Validated here, once.
    """
    x = as_numpy_matrix(features, "features")
    enc = encode_labels(labels, x.shape[0])
    k = check_positive_int(k, "k")
    lists = shared_neighbor_lists(x, enc.codes, _RESAMPLED_LIST)

    def kernel(counts: np.ndarray) -> float:
        counts = check_counts(counts, x.shape[0])
        present = np.unique(enc.codes[counts > 0])
        if present.shape[0] < 2:
            raise ValueError(f"labels must contain at least 2 distinct classes, got {present.shape[0]} "
                             f"({enc.classes[present].tolist()})")
        return _weighted_knn_accuracy(lists, counts, min(k, int(counts.sum()) - 1), enc.n_classes)

    return kernel


def _weighted_knn_accuracy(lists: NeighborLists, counts: np.ndarray, k: int, n_classes: int) -> float:
    """k-NN accuracy of the multiset of rows with multiplicities ``counts`` (every copy of a row is its own
    sample), from the rows' neighbour lists."""
    rows = np.flatnonzero(counts > 0)
    index = lists.index[rows]
    mult = counts[index]
    mult[index == rows[:, None]] -= 1  # a sample is not its own neighbour; its other copies are
    valid = lists.valid[rows]
    mult[np.arange(index.shape[1])[None, :] >= valid[:, None]] = 0
    enough = mult.sum(axis=1) >= k
    pred = np.empty(rows.shape[0], dtype=np.int64)
    if enough.any():
        pred[enough] = _vote(index[enough], mult[enough], lists.codes, k, n_classes)
    for j in np.flatnonzero(~enough):  # the valid prefix is too short: the whole order of this row
        i = int(rows[j])
        order = lists.full(i)
        m = counts[order]
        m[order == i] -= 1
        pred[j] = _vote(order[None, :], m[None, :], lists.codes, k, n_classes)[0]
    hit = pred == lists.codes[rows]
    return float(counts[rows][hit].sum() / counts.sum())


def _vote(index: np.ndarray, mult: np.ndarray, codes: np.ndarray, k: int, n_classes: int) -> np.ndarray:
    """Predictions of rows whose ordered neighbours ``index`` (r, m) have multiplicities ``mult`` (r, m)
    summing to at least ``k``: the majority of the first ``k`` copies, a tie to the class voted first."""
    r = index.shape[0]
    before = np.cumsum(mult, axis=1) - mult  # copies ahead of each entry
    take = np.clip(np.minimum(mult, k - before), 0, None)
    width = int(np.max(np.argmax(np.cumsum(take, axis=1) >= k, axis=1))) + 1 if r else 0
    index, before, take = index[:, :width], before[:, :width], take[:, :width]
    cls = codes[index]
    flat = (np.arange(r)[:, None] * n_classes + cls).reshape(-1)
    votes = np.bincount(flat, weights=take.reshape(-1), minlength=r * n_classes).reshape(r, n_classes)
    first = np.full(r * n_classes, k, dtype=np.int64)
    voted = take.reshape(-1) > 0
    np.minimum.at(first, flat[voted], before.reshape(-1)[voted])
    return (votes * (k + 1) + (k - first.reshape(r, n_classes))).argmax(axis=1)


def linear_probe_accuracy(
    features,
    labels,
    *,
    folds: int = 5,
    C: float = 1.0,
    max_iter: int = 200,
    random_state: int = 0,
) -> float:
    """Mean held-out accuracy of a standardised multinomial logistic-regression probe under stratified
    k-fold cross-validation.

    Folds are ``StratifiedKFold(folds, shuffle=True, random_state=random_state)``; each fold fits
    ``StandardScaler`` + ``LogisticRegression(C=C, lbfgs)`` on its training part. When the smallest class
    has fewer than ``folds`` samples the number of folds is reduced to that size (with a warning); every
    class needs at least 2 samples.

    Parameters
    ----------
    features : array-like or Tensor of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    folds : int, default=5
    C : float, default=1.0
        Inverse L2 regularisation strength.
    max_iter : int, default=200
    random_state : int, default=0

    Returns
    -------
    accuracy : float
        In [0, 1]; higher is better.

    References
    ----------
    .. [1] Sorkhei, Konuk, Smith. "k-NN as a Simple and Effective Estimator of Transferability",
       arXiv:2503.18528, 2025.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import linear_probe_accuracy
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 20)
    >>> f = rng.normal(size=(40, 3)) + 2 * y[:, None]
    >>> linear_probe_accuracy(f, y, folds=4)
    0.95
    """
    from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = as_numpy_matrix(features, "features")
    enc: EncodedLabels = encode_labels(labels, x.shape[0], min_per_class=2)
    folds = check_positive_int(folds, "folds", minimum=2)
    random_state = check_random_state(random_state)
    smallest = int(enc.counts.min())
    if smallest < folds:
        warnings.warn(
            f"linear_probe_accuracy: smallest class has {smallest} samples < folds={folds}; using "
            f"{smallest} folds",
            UserWarning,
            stacklevel=2,
        )
        folds = smallest
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    scores = []
    for train, test in splitter.split(x, enc.codes):
        model = make_pipeline(
            StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=random_state)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkConvergenceWarning)
            model.fit(x[train], enc.codes[train])
        scores.append(float(np.mean(model.predict(x[test]) == enc.codes[test])))
    return float(np.mean(scores))
