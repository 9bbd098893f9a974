"""OTCE (Tan et al., CVPR 2021): optimal-transport conditional entropy between a labelled source sample and
the labelled target sample, both in the source model's feature space.

``otce`` (the registry metric) is the auxiliary-free score −CE, higher is better; ``otce_components``
returns the Wasserstein term and the conditional entropy (both lower is better).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from ._inputs import (
    as_numpy_matrix,
    check_positive_int,
    check_random_state,
    encode_labels,
    stratified_subsample,
)
from ._linalg import class_sums
from ._pot import pot_result_warnings_ignored
from .leep import SubsampleWarning
from .logme import ConvergenceWarning

__all__ = ["OTCEComponents", "otce_components", "otce", "OTCE_MAX_SAMPLES"]

OTCE_MAX_SAMPLES = 1000
"""Default per-side cap (the paper subsamples 1000 points per side): exact OT costs O(n³ log n)."""


@dataclass(frozen=True)
class OTCEComponents:
    """The two OTCE terms.

    Attributes
    ----------
    wasserstein : float
        ``W_D = ⟨P, C⟩``, squared-Euclidean units (lower is closer).
    conditional_entropy : float
        ``H(Y_t | Y_s)`` under the coupling, in nats (lower is better).
    n_source, n_target : int
        Samples used per side (after subsampling).
    """

    wasserstein: float
    conditional_entropy: float
    n_source: int
    n_target: int

    def to_dict(self) -> dict:
        return asdict(self)


def _subsample(x, enc, name, max_samples, random_state):
    codes = enc.codes
    if x.shape[0] <= max_samples:
        return x, codes
    idx = stratified_subsample(codes, max_samples, random_state)
    warnings.warn(
        f"otce: {name} has {x.shape[0]} samples > max_samples={max_samples}; using a deterministic stratified "
        f"subsample of {idx.shape[0]} (random_state={random_state})",
        SubsampleWarning,
        stacklevel=3,
    )
    return x[idx], codes[idx]


def otce_components(
    source_features,
    source_labels,
    target_features,
    target_labels,
    *,
    max_samples: int = OTCE_MAX_SAMPLES,
    random_state: int = 0,
    max_iter: int = 10_000_000,
) -> OTCEComponents:
    r"""Wasserstein term and conditional entropy of OTCE, equal to
    ``tanyang1231/OTCE_Transferability_CVPR21: compute_otce_demo.py::compute_coupling`` + ``compute_CE``.

    The exact OT coupling :math:`P` (``ot.emd``) between the uniform source sample and the uniform target
    sample under the squared Euclidean cost :math:`C_{ij} = \|x^s_i - x^t_j\|^2` gives
    :math:`W_D = \langle P, C\rangle` and the joint label distribution
    :math:`P(y_s, y_t) = \sum_{i: y^s_i = y_s}\sum_{j: y^t_j = y_t} P_{ij}`; then
    :math:`\mathrm{CE} = H(Y_t\mid Y_s) = -\sum P(y_s,y_t)\log\frac{P(y_s,y_t)}{P(y_s)}` (terms with
    :math:`P(y_s,y_t) = 0` omitted). Source and target label sets are independent (each re-encoded).

    The reference builds the cost in float32 (torch, ``geomloss.utils.squared_distances``); it is float64
    here. The reference caps the network simplex at 100 000 iterations and only POT warns when that is
    hit; here the cap is ``max_iter`` and hitting it raises a :class:`ConvergenceWarning`.

    Parameters
    ----------
    source_features : array-like or Tensor of shape (n_source, n_features)
        Features of a labelled source-task sample, from the same model as the target features (e.g. the
        statistics a zoo card stores).
    source_labels : array-like of shape (n_source,)
    target_features : array-like or Tensor of shape (n_target, n_features)
    target_labels : array-like of shape (n_target,)
    max_samples : int, default=1000
        Per-side cap; above it a deterministic stratified subsample is used (with a
        :class:`SubsampleWarning`).
    random_state : int, default=0
        Seeds the subsample.
    max_iter : int, default=10_000_000
        Network-simplex iteration cap of ``ot.emd``.

    Returns
    -------
    OTCEComponents

    References
    ----------
    .. [1] Tan, Li, Huang. "OTCE: A Transferability Metric for Cross-Domain Cross-Task Representations",
       CVPR 2021 (arXiv:2103.13843).

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import otce_components
    >>> xs = np.array([[0.0], [1.0], [10.0], [11.0]])
    >>> c = otce_components(xs, [0, 0, 1, 1], xs + 0.5, ["a", "a", "b", "b"])
    >>> c.wasserstein, c.conditional_entropy
    (0.25, 0.0)
    """
    import ot

    max_samples = check_positive_int(max_samples, "max_samples", minimum=2)
    random_state = check_random_state(random_state)
    max_iter = check_positive_int(max_iter, "max_iter")
    xs = as_numpy_matrix(source_features, "source_features")
    xt = as_numpy_matrix(target_features, "target_features")
    if xs.shape[1] != xt.shape[1]:
        raise ValueError(
            "source_features and target_features must share the feature dimension, got "
            f"{xs.shape} and {xt.shape}"
        )
    es = encode_labels(source_labels, xs.shape[0], "source_labels", min_classes=1)
    et = encode_labels(target_labels, xt.shape[0], "target_labels", min_classes=2)
    xs, cs = _subsample(xs, es, "source", max_samples, random_state)
    xt, ct = _subsample(xt, et, "target", max_samples, random_state)
    cost = ot.dist(xs, xt, metric="sqeuclidean")
    a = np.full(xs.shape[0], 1.0 / xs.shape[0])
    b = np.full(xt.shape[0], 1.0 / xt.shape[0])
    with pot_result_warnings_ignored():  # read back from the log below
        plan, log = ot.emd(a, b, cost, numItermax=max_iter, log=True)
    if log.get("warning"):
        warnings.warn(f"otce: exact OT did not reach optimality: {log['warning']} (raise max_iter)",
                      ConvergenceWarning, stacklevel=2)
    wasserstein = float(np.sum(plan * cost))
    joint = class_sums(class_sums(plan, cs, es.n_classes).T, ct, et.n_classes).T  # (C_s, C_t)
    p_src = joint.sum(axis=1, keepdims=True)
    nz = joint > 0
    ratio = np.where(nz, joint / np.where(p_src > 0, p_src, 1.0), 1.0)
    ce = float(-np.sum(joint[nz] * np.log(ratio[nz])))
    return OTCEComponents(wasserstein=wasserstein, conditional_entropy=ce if ce > 0 else 0.0,
                          n_source=int(xs.shape[0]), n_target=int(xt.shape[0]))


def otce(
    source_features,
    source_labels,
    target_features,
    target_labels,
    *,
    max_samples: int = OTCE_MAX_SAMPLES,
    random_state: int = 0,
    max_iter: int = 10_000_000,
) -> float:
    r"""OT-based negative conditional entropy −H(Y_t | Y_s), the auxiliary-free OTCE score (higher is better).

    The full OTCE of the paper is :math:`\lambda_1 W_D + \lambda_2 \mathrm{CE} + b` with :math:`\lambda, b`
    regressed on auxiliary tasks of known transfer accuracy, so it cannot be computed from one source and
    one target; the reference repository's README recommends the auxiliary-free "OT-based NCE" score
    :math:`-\mathrm{CE}`, which this returns. Definition, reference and parameters: :func:`otce_components`.

    Parameters
    ----------
    source_features : array-like or Tensor of shape (n_source, n_features)
    source_labels : array-like of shape (n_source,)
    target_features : array-like or Tensor of shape (n_target, n_features)
    target_labels : array-like of shape (n_target,)
    max_samples : int, default=1000
    random_state : int, default=0
    max_iter : int, default=10_000_000

    Returns
    -------
    score : float
        ``<= 0``; higher is better (0: the coupling maps each source class into a single target class).

    References
    ----------
    .. [1] Tan, Li, Huang. "OTCE: A Transferability Metric for Cross-Domain Cross-Task Representations",
       CVPR 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import otce
    >>> xs = np.array([[0.0], [1.0], [10.0], [11.0]])
    >>> round(otce(xs, [0, 0, 0, 0], xs, [0, 1, 0, 1]), 4)  # one source class, two target classes
    -0.6931
    """
    c = otce_components(source_features, source_labels, target_features, target_labels,
                        max_samples=max_samples, random_state=random_state, max_iter=max_iter)
    return -c.conditional_entropy
