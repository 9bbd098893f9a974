"""Difficulty of a labelled task in a feature space (``task_difficulty``).

Stored with every source card and target dataset: a source whose task is at least as general and as hard
as the target's is easier to trust. Each field documents its own direction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np
import scipy.sparse

from ._inputs import as_numpy_matrix, check_positive_int, encode_labels
from .baselines import knn_loo_predictions, loo_neighbors

__all__ = ["TaskDifficulty", "task_difficulty"]


@dataclass(frozen=True)
class TaskDifficulty:
    """Descriptors of how hard a labelled task is in a given feature space.

    Attributes
    ----------
    n_classes : int
        Number of distinct labels. More classes: a more general / harder task.
    n_samples : int
        Number of samples used.
    samples_per_class : tuple of int
        Samples per class, in the sorted order of the class labels.
    imbalance : float
        ``1 - H(y) / log C`` (one minus the normalised label entropy), in [0, 1]; 0 for a balanced task
        (and for a single class). Higher = more imbalanced = harder.
    knn_error : float
        Leave-one-out k-NN error in [0, 1] (``1 - knn_accuracy``). Higher = harder.
    fisher_separability : float
        ``tr(S_between) / tr(S_total)``: fraction of the feature variance explained by the class means, in
        [0, 1]; 0 for constant features. Higher = more separable = easier.
    intrinsic_dimension : float
        TwoNN maximum-likelihood estimate of the data's intrinsic dimension (Facco et al. 2017), capped at
        ``n_features``; 0 when every sample is duplicated. Higher = harder.
    """

    n_classes: int
    n_samples: int
    samples_per_class: tuple[int, ...] = field(default_factory=tuple)
    imbalance: float = 0.0
    knn_error: float = 0.0
    fisher_separability: float = 0.0
    intrinsic_dimension: float = 0.0

    DIRECTIONS: ClassVar[dict[str, str]] = {
        "n_classes": "higher_is_harder",
        "imbalance": "higher_is_harder",
        "knn_error": "higher_is_harder",
        "fisher_separability": "higher_is_easier",
        "intrinsic_dimension": "higher_is_harder",
    }

    def to_dict(self) -> dict:
        """JSON-able dict of the fields."""
        d = asdict(self)
        d["samples_per_class"] = list(self.samples_per_class)
        return d


def _two_nn_dimension(r1: np.ndarray, r2: np.ndarray, n_features: int) -> float:
    valid = r1 > 0
    if not np.any(valid):
        return 0.0
    log_mu = np.log(r2[valid] / r1[valid])
    total = float(log_mu.sum())
    if total <= 0:
        return float(n_features)
    return float(min(valid.sum() / total, n_features))


def task_difficulty(features, labels, *, k: int = 5) -> TaskDifficulty:
    """Describe how hard a labelled task is in the given feature space.

    Parameters
    ----------
    features : array-like or Tensor of shape (n_samples, n_features)
        At least 3 samples.
    labels : array-like of shape (n_samples,)
        Any hashable labels; a single class is allowed (imbalance 0, k-NN error 0, separability 0).
    k : int, default=5
        Neighbours for the leave-one-out k-NN error (capped at ``n_samples - 1``).

    Returns
    -------
    TaskDifficulty
        See the class for each field and its direction (also in ``TaskDifficulty.DIRECTIONS``).

    References
    ----------
    .. [1] Facco, d'Errico, Rodriguez, Laio. "Estimating the intrinsic dimension of datasets by a minimal
       neighborhood information", Scientific Reports 2017.
    .. [2] Sorkhei, Konuk, Smith. "k-NN as a Simple and Effective Estimator of Transferability", 2025.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import task_difficulty
    >>> f = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [9.0, 9.0], [9.0, 10.0], [10.0, 9.0]])
    >>> d = task_difficulty(f, ["a", "a", "a", "b", "b", "b"], k=1)
    >>> d.n_classes, d.samples_per_class, d.imbalance, d.knn_error, round(d.fisher_separability, 4)
    (2, (3, 3), 0.0, 0.0, 0.9891)
    """
    x = as_numpy_matrix(features, "features", min_rows=3)
    enc = encode_labels(labels, x.shape[0], min_classes=1)
    k = min(check_positive_int(k, "k"), x.shape[0] - 1)
    n, d = x.shape
    c = enc.n_classes
    if c > 1:
        p = enc.counts / n
        imbalance = float(max(0.0, 1.0 - float(-(p * np.log(p)).sum()) / np.log(c)))
    else:
        imbalance = 0.0
    dist, idx = loo_neighbors(x, max(k, 2), enc.codes)
    pred = knn_loo_predictions(idx[:, :k], enc.codes, c)
    knn_error = float(np.mean(pred != enc.codes))
    mu = x.mean(axis=0)
    total = float(((x - mu) ** 2).sum())
    one_hot = scipy.sparse.csr_matrix((np.ones(n), (enc.codes, np.arange(n))), shape=(c, n))
    means = np.asarray(one_hot @ x) / enc.counts[:, None]
    between = float((enc.counts[:, None] * (means - mu) ** 2).sum())
    fisher = min(between / total, 1.0) if total > 0 else 0.0
    return TaskDifficulty(
        n_classes=c,
        n_samples=n,
        samples_per_class=tuple(int(v) for v in enc.counts),
        imbalance=imbalance,
        knn_error=knn_error,
        fisher_separability=fisher,
        intrinsic_dimension=_two_nn_dimension(dist[:, 0], dist[:, 1], d),
    )
