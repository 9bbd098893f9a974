"""RSA and DDS (the reference-model similarity baselines of ``dbolya/parc``): how similar the candidate's
representation of the target samples is to another representation of the **same** samples (in PARC's
benchmark a probe network trained on the target; here typically the source head's logits). Higher is
more similar.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.stats

from ._inputs import as_numpy_matrix, check_positive_int, check_random_state
from ._linalg import gram
from .leep import SubsampleWarning
from .parc import _row_correlation

__all__ = ["rsa", "dds", "RSA_MAX_SAMPLES"]

RSA_MAX_SAMPLES = 5000
"""Default sample cap of :func:`rsa`: it ranks all N(N−1)/2 dissimilarities (O(N²) time and memory)."""


def _pair(features, reference, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
    x = as_numpy_matrix(features, "features", min_rows=min_rows)
    r = as_numpy_matrix(reference, "reference", min_rows=min_rows)
    if r.shape[0] != x.shape[0]:
        raise ValueError(
            f"reference must describe the same samples as features: it has {r.shape[0]} rows, the features "
            f"have {x.shape[0]}"
        )
    return x, r


def _standardise(x: np.ndarray) -> np.ndarray:
    """``StandardScaler().fit_transform``: zero mean, unit (ddof 0) variance; constant columns become 0.
    Returns a new array."""
    xc = x - x.mean(axis=0, keepdims=True)
    std = np.sqrt(np.einsum("ij,ij->j", xc, xc) / xc.shape[0])
    xc /= np.where(std > 0, std, 1.0)[None, :]
    return xc


def rsa(features, reference, *, max_samples: int = RSA_MAX_SAMPLES, random_state: int = 0) -> float:
    r"""Representation similarity analysis: Spearman ρ (×100) between two representational dissimilarity
    matrices of the same samples (higher is more similar).

    Equal to ``dbolya/parc: methods.py::RSA(n_dims=None).get_rsa_correlation(features, reference)``:
    both inputs are standardised per column, :math:`\mathrm{RDM} = 1 - \mathrm{corrcoef}(\text{rows})`, and
    the score is :math:`100\cdot\rho_{\mathrm{Spearman}}` of the two upper triangles. As in this project's
    :func:`parc`, a constant row counts as uncorrelated (the reference gets NaN), and the dissimilarities
    are rounded to 12 decimals so that round-off cannot split ties.

    Above ``max_samples`` (default 5000) a deterministic uniform subsample of the rows (the same rows of
    both inputs) is used, with a :class:`SubsampleWarning`.

    Parameters
    ----------
    features : array-like or Tensor of shape (n_samples, n_features)
        The candidate model's features of the target samples.
    reference : array-like or Tensor of shape (n_samples, n_reference)
        Another representation of the same samples, row for row (e.g. the source head's logits).
    max_samples : int, default=5000
    random_state : int, default=0
        Seeds the subsample.

    Returns
    -------
    score : float
        In [−100, 100]; higher is more similar.

    References
    ----------
    .. [1] Dwivedi, Roig. "Representation Similarity Analysis for Efficient Task Taxonomy & Transfer
       Learning", CVPR 2019.
    .. [2] Bolya, Mittapalli, Hoffman. "Scalable Diverse Model Selection for Accessible Transfer
       Learning", NeurIPS 2021 (the ``dbolya/parc`` implementation).

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import rsa
    >>> rng = np.random.default_rng(0)
    >>> f = rng.normal(size=(40, 6))
    >>> round(rsa(f, f @ rng.normal(size=(6, 3))), 4)
    43.1794
    """
    max_samples = check_positive_int(max_samples, "max_samples", minimum=3)
    random_state = check_random_state(random_state)
    x, r = _pair(features, reference, min_rows=3)
    n = x.shape[0]
    if n > max_samples:
        idx = np.sort(np.random.default_rng(random_state).choice(n, size=max_samples, replace=False))
        warnings.warn(
            f"rsa: {n} samples exceed max_samples={max_samples}; using a deterministic subsample of "
            f"{max_samples} (random_state={random_state})",
            SubsampleWarning,
            stacklevel=2,
        )
        x, r = x[idx], r[idx]
    m = x.shape[0]
    upper = np.triu_indices(m, 1)
    rdm_x = np.round(1.0 - _row_correlation(_standardise(x)), 12)[upper]
    rdm_r = np.round(1.0 - _row_correlation(_standardise(r)), 12)[upper]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.stats.ConstantInputWarning)
        rho = scipy.stats.spearmanr(rdm_x, rdm_r)[0]
    if not np.isfinite(rho):
        raise ValueError("rsa is undefined: the dissimilarities of features or reference are all equal")
    return float(rho * 100.0)


def _u_inner(sum_prod: float, da: np.ndarray, db: np.ndarray, n: int) -> float:
    """⟨U(A), U(B)⟩ for A = ZZᵀ, B = WWᵀ with column-centred Z, W (off-diagonal entries only).

    ``sum_prod`` = Σ_{i≠j} A_ij B_ij; ``da``, ``db`` = the diagonals (‖z_i‖², ‖w_i‖²). Column-centring makes
    the off-diagonal row sums r_i = −diag_i. U-centring (Székely–Rizzo, as Kornblith's ``center_gram``
    with ``unbiased=True``) subtracts m_i + m_j with m = r/(n−2) − Σr/(2(n−1)(n−2)); expanding
    Σ_{i≠j}(A_ij − m_i − m_j)(B_ij − p_i − p_j) gives the closed form below.
    """
    ra, rb = -da, -db
    ma = ra / (n - 2) - ra.sum() / (2.0 * (n - 1) * (n - 2))
    mb = rb / (n - 2) - rb.sum() / (2.0 * (n - 1) * (n - 2))
    return float(sum_prod - 2.0 * (mb @ ra) - 2.0 * (ma @ rb) + 2.0 * (n - 2) * (ma @ mb)
                 + 2.0 * ma.sum() * mb.sum())


def dds(features, reference) -> float:
    r"""Duality diagram similarity: debiased CKA (×100) between the cosine dissimilarity matrices of two
    representations of the same samples (higher is more similar).

    Equal to ``dbolya/parc: methods.py::DDS(n_dims=None).get_similarity_from_rdms(features, reference)``:
    both inputs are standardised per column, :math:`\mathrm{RDM} = 1 - \cos(\text{rows})`, and the score is
    :math:`100\cdot\mathrm{CKA}` with the unbiased (U-statistic) centring of Kornblith et al.

    No N × N matrix is formed. U-centring annihilates every term of the form :math:`u_i + u_j + c`, so the
    U-centred RDM equals minus the U-centred Gram matrix of the row-normalised, column-centred inputs
    :math:`Z`; its inner products reduce to :math:`\|Z_a^\top Z_b\|_F^2` and row norms. The cost is three
    D × D Gram-type products, O(N·(D_a + D_b)²), and O(D²) memory.

    Parameters
    ----------
    features : array-like or Tensor of shape (n_samples, n_features)
    reference : array-like or Tensor of shape (n_samples, n_reference)
        Another representation of the same samples, row for row (e.g. the source head's logits).

    Returns
    -------
    score : float
        In [−100, 100] (debiased CKA can be slightly negative); higher is more similar.

    Raises
    ------
    ValueError
        Fewer than 4 samples (the unbiased estimator divides by n − 3), or a representation whose
        centred cosine kernel is zero (e.g. constant).

    References
    ----------
    .. [1] Dwivedi, Huang, Cichy, Roig. "Duality Diagram Similarity: a generic framework for initialization
       selection in task transfer learning", ECCV 2020.
    .. [2] Kornblith, Norouzi, Lee, Hinton. "Similarity of Neural Network Representations Revisited", ICML 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import dds
    >>> rng = np.random.default_rng(0)
    >>> f = rng.normal(size=(40, 6))
    >>> round(dds(f, f), 4)
    100.0
    """
    x, r = _pair(features, reference, min_rows=4)
    n = x.shape[0]
    # Row-normalised standardised inputs Z; their column-centred versions Zc = Z − 1mᵀ enter only through
    # ZcᵀZc = ZᵀZ − N mmᵀ, Zcᵀ Wc = ZᵀW − N m_a m_bᵀ and ‖Zc_i‖² = ‖Z_i‖² − 2 Z_i·m + ‖m‖², so no centred
    # copy of an N × D matrix is formed.
    zs, means, diag = [], [], []
    for a in (x, r):
        z = _standardise(a)
        norms = np.sqrt(np.einsum("ij,ij->i", z, z))
        z /= np.where(norms > 0, norms, 1.0)[:, None]  # sklearn.preprocessing.normalize: zero rows stay 0
        m = z.mean(axis=0)
        zs.append(z)
        means.append(m)
        diag.append(np.where(norms > 0, 1.0, 0.0) - 2.0 * (z @ m) + m @ m)
    (za, zb), (ma, mb), (da, db) = zs, means, diag
    ga = gram(za) - n * np.outer(ma, ma)
    gb = gram(zb) - n * np.outer(mb, mb)
    cross = za.T @ zb - n * np.outer(ma, mb)
    aa = _u_inner(float((ga * ga).sum() - da @ da), da, da, n)
    bb = _u_inner(float((gb * gb).sum() - db @ db), db, db, n)
    ab = _u_inner(float((cross * cross).sum() - da @ db), da, db, n)
    if not (aa > 0 and bb > 0):
        raise ValueError("dds is undefined: a representation has a zero centred cosine kernel (constant rows?)")
    return float(ab / np.sqrt(aa * bb) * 100.0)
