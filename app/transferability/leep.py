"""LEEP, NCE (source-head based) and NLEEP (Gaussian-mixture LEEP); higher is better for all three."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch

from ._inputs import (
    EncodedLabels,
    as_matrix,
    as_numpy_matrix,
    check_positive_int,
    check_random_state,
    codes_tensor,
    encode_labels,
    stratified_subsample,
)
from ._linalg import class_sums
from ._resample import drawn_rows

__all__ = ["leep", "leep_resampled", "nce", "nce_resampled", "nleep", "SubsampleWarning"]

_TINY = float(np.finfo(np.float64).tiny)
_NCE_EPS = 1e-20


class SubsampleWarning(UserWarning):
    """A metric ran on a deterministic subsample of the input because the input was above its size limit."""


def _as_probabilities(source_probs, name: str = "source_probs") -> torch.Tensor:
    p = as_matrix(source_probs, name, min_rows=1)
    if bool((p < 0).any()):
        i, j = (int(v) for v in torch.nonzero(p < 0)[0])
        raise ValueError(
            f"{name} must be probabilities (softmax outputs), got negative value {float(p[i, j]):.4g} "
            f"at [{i}, {j}]; logits are not accepted"
        )
    sums = p.sum(dim=1)
    bad = torch.nonzero((sums - 1.0).abs() > 1e-3)
    if bad.numel():
        i = int(bad[0, 0])
        raise ValueError(
            f"{name} rows must sum to 1 (softmax outputs); row {i} sums to {float(sums[i]):.6g}"
        )
    return p


def _leep_kernel(theta: torch.Tensor, codes: torch.Tensor, n_classes: int) -> float:
    n = theta.shape[0]
    joint = torch.zeros((n_classes, theta.shape[1]), dtype=torch.float64, device=theta.device)
    joint.index_add_(0, codes, theta)
    joint /= n
    pz = joint.sum(dim=0, keepdim=True)
    # An empty source class (only possible with hard, one-hot θ) gets P(y|z) = 0 instead of 0/0.
    cond = torch.where(pz > 0, joint / torch.where(pz > 0, pz, torch.ones_like(pz)), torch.zeros_like(joint))
    total = torch.zeros((), dtype=torch.float64, device=theta.device)
    step = max(1, int(2**24 // max(1, theta.shape[1])))
    for start in range(0, n, step):
        th = theta[start : start + step]
        eep = (th * cond[codes[start : start + step]]).sum(dim=1)
        total = total + torch.log(torch.clamp(eep, min=_TINY)).sum()
    return float(total / n)


def leep(source_probs, labels) -> float:
    r"""Log expected empirical prediction of the source head for the target labels.

    :math:`\hat P(y,z) = \frac1N\sum_i\theta(x_i)_z 1[y_i=y]`, :math:`\hat P(y\mid z) = \hat P(y,z)/\hat P(z)`,
    :math:`\mathrm{LEEP} = \frac1N\sum_i \log\sum_z \hat P(y_i\mid z)\,\theta(x_i)_z`. Equal to
    ``thuml/LogME: LEEP.py`` and ``tllib/ranking/leep.py`` on valid inputs. Where a sample's expected
    empirical prediction is exactly 0 (only possible with hard, one-hot θ) the log is taken of the
    smallest positive float64 instead of returning ``-inf`` (each such sample contributes about −708).

    Parameters
    ----------
    source_probs : array-like or Tensor of shape (n_samples, n_source_classes)
        Softmax outputs of the source model's head (rows sum to 1; logits are rejected).
    labels : array-like of shape (n_samples,)
        Target labels, re-encoded to 0..C-1.

    Returns
    -------
    score : float
        In (−∞, 0]; higher is better.

    References
    ----------
    .. [1] Nguyen, Hassner, Seeger, Archambeau. "LEEP: A New Measure to Evaluate Transferability of
       Learned Representations", ICML 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import leep
    >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8]])
    >>> round(leep(p, [0, 0, 1, 1]), 4)
    -0.384
    """
    theta = _as_probabilities(source_probs)
    enc = encode_labels(labels, theta.shape[0], min_classes=1)
    return _leep_kernel(theta, codes_tensor(enc, theta.device), enc.n_classes)


def nce(source_probs, labels) -> float:
    r"""Negative conditional entropy :math:`-H(Y\mid Z)` of target labels given hard source labels.

    :math:`Z = \arg\max_z\theta(x)_z` (ties resolve to the lowest index), and
    :math:`\mathrm{NCE} = \sum_{y,z}\hat P(y,z)\log(\hat P(y\mid z) + 10^{-20})`; the ε sits only inside
    the log, so empty cells contribute 0, as in ``thuml/LogME: NCE.py`` and ``tllib/ranking/nce.py``.

    Parameters
    ----------
    source_probs : array-like or Tensor of shape (n_samples, n_source_classes) or (n_samples,)
        Source-head probabilities (their argmax is taken), or already-hard source labels (1-D, any
        hashable values).
    labels : array-like of shape (n_samples,)
        Target labels.

    Returns
    -------
    score : float
        In ``[-log C, 0]``; higher is better.

    References
    ----------
    .. [1] Tran, Nguyen, Hassner. "Transferability and Hardness of Supervised Classification Tasks",
       ICCV 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import nce
    >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8]])
    >>> nce(p, [0, 0, 1, 0])
    -0.34657359027997264
    """
    z, n_source = _hard_source_labels(source_probs)
    enc = encode_labels(labels, z.shape[0], min_classes=1)
    return _nce_of(enc.codes, enc.n_classes, z, n_source, None, z.shape[0])


def _hard_source_labels(source_probs) -> tuple[np.ndarray, int]:
    """(argmax source class of each row, number of source classes); 1-D input is already hard labels."""
    is_1d = (isinstance(source_probs, torch.Tensor) and source_probs.ndim == 1) or (
        not isinstance(source_probs, torch.Tensor) and np.asarray(source_probs).ndim == 1
    )
    if is_1d:
        z_enc = encode_labels(source_probs, len(source_probs), "source_probs", min_classes=1)
        return z_enc.codes, z_enc.n_classes
    theta = _as_probabilities(source_probs)
    return torch.argmax(theta, dim=1).cpu().numpy(), int(theta.shape[1])


def _nce_of(codes: np.ndarray, n_classes: int, z: np.ndarray, n_source: int, weights, n: float) -> float:
    """NCE of target codes against hard source labels ``z``; ``weights`` are row multiplicities summing to n."""
    joint = np.bincount(codes * n_source + z, weights=weights, minlength=n_classes * n_source).reshape(
        n_classes, n_source
    ) / n
    pz = joint.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = np.where(pz > 0, joint / np.where(pz > 0, pz, 1.0), 0.0)
    return float(np.sum(joint * np.log(cond + _NCE_EPS)))


def leep_resampled(source_probs, labels) -> Callable[[np.ndarray], float]:
    """The bootstrap kernel of :func:`leep`: ``kernel(counts)`` equals ``leep(source_probs[idx],
    labels[idx])`` for every ``idx`` with ``np.bincount(idx) == counts``, up to rounding — the empirical joint
    is a weighted class sum, the log-likelihood a weighted mean over the drawn rows."""
    theta = _as_probabilities(source_probs).cpu().numpy()
    enc = encode_labels(labels, theta.shape[0], min_classes=1)

    def kernel(counts: np.ndarray) -> float:
        drawn = drawn_rows(counts, enc.codes, theta.shape[0], min_classes=1, classes=enc.classes)
        th, w = theta[drawn.rows], drawn.weights
        joint = class_sums(th, drawn.codes, drawn.n_classes, weights=w) / drawn.n
        pz = joint.sum(axis=0, keepdims=True)
        cond = np.where(pz > 0, joint / np.where(pz > 0, pz, 1.0), 0.0)
        eep = (th * cond[drawn.codes]).sum(axis=1)
        return float((w * np.log(np.maximum(eep, _TINY))).sum() / drawn.n)

    return kernel


def nce_resampled(source_probs, labels) -> Callable[[np.ndarray], float]:
    """The bootstrap kernel of :func:`nce` (weighted joint counts of target and hard source labels)."""
    z, n_source = _hard_source_labels(source_probs)
    enc = encode_labels(labels, z.shape[0], min_classes=1)

    def kernel(counts: np.ndarray) -> float:
        drawn = drawn_rows(counts, enc.codes, z.shape[0], min_classes=1, classes=enc.classes)
        return _nce_of(drawn.codes, drawn.n_classes, z[drawn.rows], n_source, drawn.weights, drawn.n)

    return kernel


def nleep(
    features,
    labels,
    *,
    pca_variance: float | None = 0.8,
    components_per_class: int = 5,
    random_state: int = 0,
    max_samples: int = 5000,
    reg_covar: float = 1e-6,
    max_retries: int = 6,
) -> float:
    r"""NLEEP: LEEP with a Gaussian mixture's posteriors in place of the source head (log form).

    The features are reduced by PCA to the components that explain ``pca_variance`` of the variance,
    a :class:`sklearn.mixture.GaussianMixture` with ``components_per_class · C`` full-covariance
    components is fitted (``random_state`` seeds it), and its posteriors are scored with :func:`leep`.
    This is the log form of Li et al. / ``google-research: stable_transfer/transferability/nleep.py``
    (the SFDA/ETran copies return the mean without the log and are unseeded). Fitting runs in float64:
    float32 fits fail on ill-conditioned components. A fit that raises scikit-learn's "ill-defined
    empirical covariance" ``ValueError`` is retried with ``reg_covar`` multiplied by 10, up to
    ``max_retries`` times, with a warning. Above ``max_samples`` samples a deterministic stratified
    subsample is used (with a :class:`SubsampleWarning`); the mixture never has more components than
    samples.

    Parameters
    ----------
    features : array-like or Tensor of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    pca_variance : float in (0, 1] or None, default=0.8
        Fraction of variance kept by PCA; ``None`` or 1 skips the PCA.
    components_per_class : int, default=5
    random_state : int, default=0
        Seeds the subsample and the mixture.
    max_samples : int, default=5000
    reg_covar : float, default=1e-6
        Initial covariance regularisation of the mixture.
    max_retries : int, default=6

    Returns
    -------
    score : float
        In (−∞, 0]; higher is better.

    References
    ----------
    .. [1] Li, Jia, Pan, Yuan, Gong, et al. "Ranking Neural Checkpoints", CVPR 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import nleep
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 30)
    >>> f = rng.normal(size=(60, 3)) + 3 * y[:, None]
    >>> round(nleep(f, y, components_per_class=1), 4)
    -0.005
    """
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    x = as_numpy_matrix(features, "features")
    enc = encode_labels(labels, x.shape[0])
    random_state = check_random_state(random_state)
    components_per_class = check_positive_int(components_per_class, "components_per_class")
    max_samples = check_positive_int(max_samples, "max_samples", minimum=2)
    if pca_variance is not None and not (0.0 < float(pca_variance) <= 1.0):
        raise ValueError(f"pca_variance must be in (0, 1] or None, got {pca_variance!r}")
    x, enc = _maybe_subsample(x, enc, max_samples, random_state, "nleep")
    if pca_variance is not None and float(pca_variance) < 1.0:
        x = PCA(n_components=float(pca_variance), svd_solver="full").fit_transform(x)
    n_components = min(components_per_class * enc.n_classes, x.shape[0])
    reg = float(reg_covar)
    for attempt in range(max_retries + 1):
        try:
            gmm = GaussianMixture(
                n_components=n_components, covariance_type="full", reg_covar=reg, random_state=random_state
            ).fit(x)
            break
        except ValueError as exc:
            if attempt == max_retries:
                raise ValueError(
                    f"nleep: GaussianMixture failed even with reg_covar={reg:g}: {exc}"
                ) from exc
            warnings.warn(
                f"nleep: GaussianMixture fit failed with reg_covar={reg:g} ({exc}); retrying with "
                f"reg_covar={reg * 10:g}",
                RuntimeWarning,
                stacklevel=2,
            )
            reg *= 10.0
    post = torch.from_numpy(gmm.predict_proba(x).astype(np.float64))
    return _leep_kernel(post, torch.from_numpy(enc.codes), enc.n_classes)


def _maybe_subsample(
    x: np.ndarray, enc: EncodedLabels, max_samples: int, random_state: int, metric: str
) -> tuple[np.ndarray, EncodedLabels]:
    if x.shape[0] <= max_samples:
        return x, enc
    idx = stratified_subsample(enc.codes, max_samples, random_state)
    warnings.warn(
        f"{metric}: {x.shape[0]} samples exceed max_samples={max_samples}; using a deterministic stratified "
        f"subsample of {idx.shape[0]} (random_state={random_state})",
        SubsampleWarning,
        stacklevel=3,
    )
    codes = enc.codes[idx]
    counts = np.bincount(codes, minlength=enc.n_classes)
    return x[idx], EncodedLabels(codes=codes, classes=enc.classes, counts=counts)
