"""Strong simple baselines: leave-one-out k-NN accuracy and cross-validated linear-probe accuracy.

Both are accuracies in [0, 1]; higher is better (Sorkhei et al. 2025 find k-NN hard to beat).
"""

from __future__ import annotations

import warnings

import numpy as np

from ._inputs import EncodedLabels, as_numpy_matrix, check_positive_int, check_random_state, encode_labels

__all__ = ["knn_accuracy", "linear_probe_accuracy", "loo_neighbors", "knn_loo_predictions"]


def loo_neighbors(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices (n, k) of each sample's k nearest *other* samples (Euclidean, ascending).

    scikit-learn's ``kneighbors()`` without a query excludes every sample from its own neighbours (also
    when duplicates exist).
    """
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(x)
    dist, idx = nn.kneighbors()
    return dist, idx


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

    Each sample is classified by the majority label of its ``k`` nearest other samples (Euclidean
    distance, brute force); a tie goes to the tied class with the nearest vote. ``k`` is capped at
    ``n_samples - 1``.

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
    _, idx = loo_neighbors(x, k)
    pred = knn_loo_predictions(idx, enc.codes, enc.n_classes)
    return float(np.mean(pred == enc.codes))


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
