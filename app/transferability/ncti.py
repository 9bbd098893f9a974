"""NCTI (Wang et al., ICCV 2023): the three neural-collapse components of one model and their pool-level
combination ``ncti_combine``.

``ncti_seli`` and ``ncti_ncc`` are higher-is-better, ``ncti_vc`` (within-class variability) is
lower-is-better: it enters the combination with a minus sign. The combination needs every candidate of the
pool and is listed in ``registry.POOL_SCORES``; it is not a registry metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import scipy.linalg

from ._inputs import as_array, check_positive_int, encode_labels
from ._linalg import center_, eigh, gram, outer_gram, single_thread_blas
from ._pool import minmax, pool_parts

__all__ = ["NCTIComponents", "ncti_components", "ncti_seli", "ncti_ncc", "ncti_vc", "ncti_combine", "NCTI_PARTS"]

NCTI_PARTS = ("ncti_seli", "ncti_ncc", "ncti_vc")
"""Registry metrics that :func:`ncti_combine` reads for every model of the pool."""


@dataclass(frozen=True)
class NCTIComponents:
    """The three NCTI components of one model.

    Attributes
    ----------
    seli : float
        Nuclear norm of the centred LDA projection (higher is better).
    ncc : float
        Mean LDA posterior of the true class (higher is better).
    vc : float
        ``log Σ_c ‖P_c‖_*`` of the per-class LDA posterior matrices (lower is better).
    shrinkage : float or None
        The LDA shrinkage used (``None``: the reference's unshrunk SVD solver).
    """

    seli: float
    ncc: float
    vc: float
    shrinkage: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def _pca(xc: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` PCA scores (n, k) and explained variances (k,), ddof = 1 as scikit-learn, of the
    column-centred ``xc``."""
    n, d = xc.shape
    if n >= d:
        g = gram(xc)
        if k < d:  # only the top k pairs: LAPACK's subset driver (MRRR) skips the rest of the spectrum
            with single_thread_blas():
                evals, evecs = scipy.linalg.eigh(g, subset_by_index=[d - k, d - 1], driver="evr")
        else:
            evals, evecs = eigh(g)
        order = np.argsort(evals)[::-1][:k]
        scores = xc @ np.ascontiguousarray(evecs[:, order])
        variances = evals[order] / (n - 1)
    else:
        evals, evecs = eigh(outer_gram(xc))
        order = np.argsort(evals)[::-1][:k]
        lam = np.clip(evals[order], 0.0, None)
        scores = evecs[:, order] * np.sqrt(lam)[None, :]
        variances = lam / (n - 1)
    return scores, variances


def _nuclear_norm(a: np.ndarray) -> float:
    with single_thread_blas():
        return float(np.linalg.svd(a, compute_uv=False).sum())


def ncti_components(features, labels, *, pca_dim: int | str = 64) -> NCTIComponents:
    r"""The three components of NCTI for one model, equal to ``BUserName/NCTI: metrics.py::NCTI_Score``.

    The features are reduced to their top ``pca_dim`` (64) principal components. The LDA shrinkage is
    :math:`\max(\exp(-\sum_{j\le 32}\lambda_j), 10^{-10})` over the top 32 (``pca_dim // 2``) explained
    variances; when that floor is hit — whenever they sum above ≈ 23, i.e. for any unit-scale features —
    scikit-learn's ``LinearDiscriminantAnalysis(solver="svd")`` without shrinkage is used, otherwise
    ``solver="eigen"`` with that shrinkage, as the reference does. With ``Z`` the LDA projection (C−1
    columns) and ``P`` its posteriors (N × C):

    * ``seli`` = :math:`\|Z - \bar Z\|_*` (nuclear norm);
    * ``ncc`` = :math:`\frac1N\sum_i P_{i y_i}`;
    * ``vc`` = :math:`\log\sum_c \|P_{[y=c]}\|_*`.

    The PCA is exact (eigendecomposition of the Gram matrix). The reference calls
    ``PCA(n_components=64)`` with scikit-learn's ``svd_solver="auto"``, which picks a *randomized* solver
    (seeded by the global RNG) for inputs with more than 500 rows and columns; its values then differ from
    the exact ones by the randomized approximation. Where its solver is exact (e.g. D = 64) the values are
    equal.

    Parameters
    ----------
    features : array-like or Tensor of shape (n_samples, n_features)
        ``min(n_samples, n_features) >= pca_dim`` (the reference raises otherwise).
    labels : array-like of shape (n_samples,)
    pca_dim : int or "auto", default=64
        ``"auto"``: ``min(64, n_samples, n_features)`` — the reference's 64 where the input allows it, else
        every principal direction (the PCA is then a rotation and the shrinkage reads the top half of the
        variances). The ranking job passes ``"auto"``: small backbones (D < 64) get a value instead of the
        reference's error, and inputs with D ≥ 64 get exactly the reference's.

    Returns
    -------
    NCTIComponents

    References
    ----------
    .. [1] Wang, Luo, Zheng, Huang, Baktashmotlagh. "How Far Pre-trained Models Are from Neural Collapse on
       the Target Dataset Informs their Transferability", ICCV 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import ncti_components
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1, 2], 30)
    >>> f = rng.normal(size=(90, 8)) + 3.0 * np.eye(8)[y]
    >>> c = ncti_components(f, y, pca_dim=4)
    >>> round(c.ncc, 4), round(c.shrinkage, 6)  # small variances: the shrinkage branch
    (0.9884, 0.000318)
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    x = as_array(features, "features", owned=True)  # float64 copy, centred in place below
    if not isinstance(x, np.ndarray):
        x = x.cpu().numpy()
    n, d = x.shape
    if isinstance(pca_dim, str):
        if pca_dim != "auto":
            raise ValueError(f"pca_dim must be a positive int or 'auto', got {pca_dim!r}")
        pca_dim = max(2, min(64, n, d))
    pca_dim = check_positive_int(pca_dim, "pca_dim", minimum=2)
    if min(n, d) < pca_dim:
        raise ValueError(
            f"ncti needs min(n_samples, n_features) >= pca_dim={pca_dim} (the reference's PCA raises), got "
            f"features of shape {(n, d)}; pass a smaller pca_dim"
        )
    enc = encode_labels(labels, n, "labels", min_classes=2)
    center_(x)
    z, variances = _pca(x, pca_dim)
    temp = max(math.exp(-float(variances[: pca_dim // 2].sum())), 1e-10)
    if temp == 1e-10:
        clf = LinearDiscriminantAnalysis(solver="svd")
        shrinkage = None
    else:
        clf = LinearDiscriminantAnalysis(solver="eigen", shrinkage=float(temp))
        shrinkage = float(temp)
    codes = enc.codes
    with single_thread_blas():  # the SVDs of the N × 64 matrix: threaded LAPACK collapses on shared cores
        low = clf.fit_transform(z, codes)
    low = low - low.mean(axis=0, keepdims=True)
    seli = _nuclear_norm(low)
    post = clf.predict_proba(z)
    ncc = float(post[np.arange(n), codes].sum() / n)
    class_nuc = sum(_nuclear_norm(post[codes == c]) for c in range(enc.n_classes))
    return NCTIComponents(seli=seli, ncc=ncc, vc=float(math.log(class_nuc)), shrinkage=shrinkage)


def _component_doc(name: str, what: str, direction: str) -> str:
    return f"""NCTI component ``{name}``: {what} ({direction}).

    See :func:`ncti_components` for the definition and reference; this returns one field of it.

    Parameters
    ----------
    features : array-like or Tensor of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    pca_dim : int or "auto", default=64
        See :func:`ncti_components`.

    Returns
    -------
    value : float
        {direction.capitalize()}.

    References
    ----------
    .. [1] Wang et al. "How Far Pre-trained Models Are from Neural Collapse on the Target Dataset Informs
       their Transferability", ICCV 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import ncti_{name}
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1, 2], 30)
    >>> f = rng.normal(size=(90, 8)) + 3.0 * np.eye(8)[y]
    >>> round(ncti_{name}(f, y, pca_dim=4), 4)
    {{example}}
    """


def ncti_seli(features, labels, *, pca_dim: int | str = 64) -> float:
    return ncti_components(features, labels, pca_dim=pca_dim).seli


def ncti_ncc(features, labels, *, pca_dim: int | str = 64) -> float:
    return ncti_components(features, labels, pca_dim=pca_dim).ncc


def ncti_vc(features, labels, *, pca_dim: int | str = 64) -> float:
    return ncti_components(features, labels, pca_dim=pca_dim).vc


ncti_seli.__doc__ = _component_doc("seli", "nuclear norm of the centred LDA projection",
                                   "higher is better").replace("{example}", "42.5758")
ncti_ncc.__doc__ = _component_doc("ncc", "mean LDA posterior of the true class",
                                  "higher is better").replace("{example}", "0.9884")
ncti_vc.__doc__ = _component_doc("vc", "log of the summed nuclear norms of the per-class posterior matrices",
                                 "lower is better").replace("{example}", "2.8281")


def ncti_combine(parts: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    r"""NCTI of every model of a pool: ``mm(ncc) + mm(seli) − mm(vc)`` (higher is better).

    ``mm(v)_m = (v_m − min_pool v) / (max_pool v − min_pool v)``, as
    ``BUserName/NCTI: evaluate_metric_group1_cpu.py`` (``__main__``) combines the components over its
    candidate models. Pool-dependent: undefined for one model, not comparable across pools.

    Parameters
    ----------
    parts : mapping of str to mapping
        ``{model: {"ncti_seli": ..., "ncti_ncc": ..., "ncti_vc": ...}}`` for every candidate (at least 2).

    Returns
    -------
    scores : dict of str to float
        Per model, in [−1, 2]; higher is better.

    Raises
    ------
    ValueError
        Fewer than 2 models, a missing or non-finite part, or a part equal across the whole pool.

    References
    ----------
    .. [1] Wang et al. "How Far Pre-trained Models Are from Neural Collapse on the Target Dataset Informs
       their Transferability", ICCV 2023.

    Examples
    --------
    >>> from app.transferability import ncti_combine
    >>> parts = {"a": {"ncti_seli": 30.0, "ncti_ncc": 0.9, "ncti_vc": 4.0},
    ...          "b": {"ncti_seli": 10.0, "ncti_ncc": 0.5, "ncti_vc": 5.0},
    ...          "c": {"ncti_seli": 20.0, "ncti_ncc": 0.8, "ncti_vc": 4.5}}
    >>> {m: round(v, 4) for m, v in ncti_combine(parts).items()}
    {'a': 2.0, 'b': -1.0, 'c': 0.75}
    """
    models, cols = pool_parts(parts, NCTI_PARTS, "ncti_combine")
    seli = minmax(cols["ncti_seli"], "ncti_seli", "ncti_combine")
    ncc = minmax(cols["ncti_ncc"], "ncti_ncc", "ncti_combine")
    vc = minmax(cols["ncti_vc"], "ncti_vc", "ncti_combine")
    combined = ncc + seli - vc  # the reference's order: mcscore + mascore - cpscore
    return {m: float(v) for m, v in zip(models, combined, strict=True)}
