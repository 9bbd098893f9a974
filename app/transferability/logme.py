"""LogME: log maximum evidence of a Bayesian linear model on the features (higher is better)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import torch

from ._inputs import as_array, as_numpy_matrix, as_targets, check_counts, encode_labels
from ._linalg import class_sums, codes_like, eigh, gram, outer_gram, to_numpy
from ._resample import drawn_rows, weighted_gram, weighted_outer

__all__ = ["logme", "logme_resampled", "ConvergenceWarning"]

_VARIANTS = ("full_d", "thuml_fixed_point")


class ConvergenceWarning(UserWarning):
    """An iterative metric stopped at its iteration cap before reaching its tolerance."""


def logme(
    features,
    labels=None,
    *,
    regression: bool = False,
    tol: float = 1e-7,
    max_iter: int = 1000,
    variant: str = "full_d",
) -> float:
    r"""Log maximum evidence (LogME) of the features for the labels or targets.

    For each target column :math:`t` (the one-vs-rest indicator of each class, or each regression /
    multi-label column) a Bayesian linear model :math:`t = Fw + \varepsilon`, :math:`w\sim N(0,\alpha^{-1}I)`,
    :math:`\varepsilon\sim N(0,\beta^{-1}I)` is fitted by maximising its evidence

    .. math:: \mathcal L(\alpha,\beta) = \tfrac D2\log\alpha + \tfrac N2\log\beta
        - \tfrac12\log|\alpha I_D + \beta F^\top F| - \tfrac\beta2\|Fm-t\|^2 - \tfrac\alpha2\|m\|^2
        - \tfrac N2\log 2\pi

    with MacKay's fixed-point updates, iterated until the relative change of :math:`\alpha/\beta` is below
    ``tol``. The score is the mean over columns of :math:`\mathcal L/N`. The log-determinant runs over all
    ``D`` eigenvalues of :math:`F^\top F`, including the zero ones, so the value is the true evidence also
    when ``rank(F) < D`` (e.g. ``D > N``); the popular fixed-point code drops ``-(D-k)/2·log α`` there.

    Features are used as given (no centring), as in the reference code. One eigendecomposition of
    :math:`F^\top F` (or of :math:`FF^\top` when ``N < D``) is shared by all columns, and the fixed-point
    iteration runs on all columns at once. CUDA tensors are processed on their GPU.

    Parameters
    ----------
    features : array-like or Tensor of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,), or (n_samples, n_targets) when ``regression=True``
        Class labels (any hashable values, re-encoded to 0..C-1), or real-valued targets.
    regression : bool, default=False
        Treat ``labels`` as real targets (regression, or a 0/1 multi-label matrix): one column each.
    tol : float, default=1e-7
        Relative tolerance on :math:`\alpha/\beta` between iterations.
    max_iter : int, default=1000
        Iteration cap; a :class:`ConvergenceWarning` is emitted for columns that did not converge.
    variant : {"full_d", "thuml_fixed_point"}, default="full_d"
        ``"thuml_fixed_point"`` reproduces ``thuml/LogME: LogME._fit_fixed_point`` (11 iterations, 1e-3
        stopping rule, ε = 1e-5, singular values ≤ 1e-10 dropped, log-determinant over the non-zero
        singular values only). It is kept for comparison; it overestimates the evidence when rank(F) < D.

    Returns
    -------
    score : float
        Mean log evidence per sample. Higher is better.

    Raises
    ------
    ValueError
        On malformed inputs, fewer than 2 classes, or an all-zero regression column (unbounded evidence).

    References
    ----------
    .. [1] You, Liu, Wang, Long. "LogME: Practical Assessment of Pre-trained Models for Transfer
       Learning", ICML 2021.
    .. [2] You et al. "Ranking and Tuning Pre-trained Models: A New Paradigm for Exploiting Model
       Hubs", JMLR 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from app.transferability import logme
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)
    >>> f = rng.normal(size=(100, 8)) + y[:, None]
    >>> round(logme(f, y), 4)
    -0.7357
    """
    if variant not in _VARIANTS:
        raise ValueError(f"variant must be one of {_VARIANTS}, got {variant!r}")
    if labels is None:
        raise ValueError("logme needs labels (classification) or targets with regression=True")
    f = as_array(features, "features")
    n = f.shape[0]
    if regression:
        t = as_targets(labels, n, "targets")
        t = t.to(f.device) if isinstance(f, torch.Tensor) else t.numpy()
        col_sq = to_numpy((t * t).sum(axis=0))
        zero = np.flatnonzero(col_sq == 0)
        if zero.size:
            raise ValueError(
                f"targets column {int(zero[0])} is identically zero; its evidence is unbounded"
            )
        ft = None
    else:
        enc = encode_labels(labels, n, "labels", min_classes=2)
        t = None
        ft = (codes_like(enc, f), enc.n_classes, enc.counts)
    if not (tol > 0):
        raise ValueError(f"tol must be > 0, got {tol!r}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter!r}")
    sigma, p2, t2 = _spectral_projections(f, t, ft, thuml=variant == "thuml_fixed_point")
    n, d = f.shape
    if variant == "thuml_fixed_point":
        ev = _thuml_fixed_point(sigma, p2, t2, n, d)
    else:
        ev = _full_d_fixed_point(sigma, p2, t2, n, tol=float(tol), max_iter=int(max_iter))
    return float(ev.mean())


def _spectral_projections(f, t, class_info, *, thuml: bool):
    """Eigenvalues σ (k,) of FᵀF kept as non-zero, squared projections p² (k, K) of every target column
    on the matching left singular vectors, and ‖t‖² (K,); numpy arrays (the fixed point that follows works
    on these small arrays only, on the CPU)."""
    n, d = f.shape
    if n > d:
        s, v = eigh(gram(f))
        if class_info is not None:
            codes, c, counts = class_info
            ftt = class_sums(f, codes, c).T  # Fᵀ T for one-hot T: (d, C)
            t2 = counts.astype(np.float64)
        else:
            ftt = f.T @ t
            t2 = to_numpy((t * t).sum(axis=0))
        return (*_from_gram(to_numpy(s), to_numpy(v.T @ ftt), n, d, thuml=thuml), t2)
    s, u = eigh(outer_gram(f))
    if class_info is not None:
        codes, c, counts = class_info
        ut = class_sums(u, codes, c).T  # Uᵀ T: (n, C)
        t2 = counts.astype(np.float64)
    else:
        ut = u.T @ t
        t2 = to_numpy((t * t).sum(axis=0))
    return (*_from_outer(to_numpy(s), to_numpy(ut), n, d, thuml=thuml), t2)


def _from_gram(s, z, n, d, *, thuml: bool):
    """(σ, p²) from the eigenvalues ``s`` of FᵀF and the target columns' coordinates ``z = VᵀFᵀt``."""
    if thuml:
        keep = np.sqrt(np.maximum(s, 0)) > 1e-10
    else:
        keep = s > s.max() * max(n, d) * np.finfo(np.float64).eps
    sigma = s[keep]
    return sigma, z[keep] ** 2 / sigma[:, None]


def _from_outer(s, ut, n, d, *, thuml: bool):
    """(σ, p²) from the eigenvalues ``s`` of FFᵀ and the target columns' coordinates ``ut = Uᵀt``."""
    if thuml:
        keep = np.ones_like(s, dtype=bool)  # thuml takes a thin SVD: all n singular values
        s = np.maximum(s, 0)
    else:
        keep = s > s.max() * max(n, d) * np.finfo(np.float64).eps
    return s[keep], ut[keep] ** 2


def logme_resampled(features, labels=None, *, regression: bool = False, tol: float = 1e-7,
                    max_iter: int = 1000, variant: str = "full_d") -> Callable[[np.ndarray], float]:
    """The bootstrap kernel of :func:`logme`: ``kernel(counts)`` equals ``logme(features[idx],
    labels[idx], ...)`` for every ``idx`` with ``np.bincount(idx) == counts``, up to rounding.

    A resample changes the evidence only through the weighted Gram matrix ``FᵀWF`` (W the multiplicities),
    ``FᵀWt`` and ``Σ w t²``; with fewer materialised rows than features the outer Gram of the √w-scaled
    drawn rows has the same non-zero spectrum, and the left singular vectors of the copies are the drawn
    rows' scaled by 1/√w. Inputs are validated here, once. ``variant="thuml_fixed_point"`` counts the zero
    singular values of the duplicate rows, so its kernel materialises each resample.
    """
    if variant not in _VARIANTS:
        raise ValueError(f"variant must be one of {_VARIANTS}, got {variant!r}")
    if labels is None:
        raise ValueError("logme needs labels (classification) or targets with regression=True")
    if not (tol > 0):
        raise ValueError(f"tol must be > 0, got {tol!r}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter!r}")
    f = as_numpy_matrix(features, "features")
    n_rows, d = f.shape
    kwargs = {"regression": regression, "tol": tol, "max_iter": max_iter, "variant": variant}
    if regression:
        t = as_targets(labels, n_rows, "targets").numpy()
        enc = None
    else:
        enc = encode_labels(labels, n_rows, "labels", min_classes=2)
        t = None
    if variant != "full_d":
        target = t if regression else labels

        def materialised(counts: np.ndarray) -> float:
            idx = np.repeat(np.arange(n_rows), check_counts(counts, n_rows))
            return logme(f[idx], np.asarray(target)[idx], **kwargs)

        return materialised

    def prepared(counts: np.ndarray):
        """(σ, p², ‖t‖², N) of one resample: everything before the fixed point."""
        drawn = drawn_rows(counts, None if enc is None else enc.codes, n_rows, classes=None if enc is None
                           else enc.classes)
        x, w, n = f[drawn.rows], drawn.weights, drawn.n
        if regression:
            tr = t[drawn.rows]
            t2 = (w[:, None] * tr * tr).sum(axis=0)
            zero = np.flatnonzero(t2 == 0)
            if zero.size:
                raise ValueError(f"targets column {int(zero[0])} is identically zero; its evidence is unbounded")
        else:
            t2 = drawn.class_counts
        if n > d:
            s, v = eigh(weighted_gram(x, w))
            ftt = (x.T @ (w[:, None] * tr) if regression
                   else class_sums(x, drawn.codes, drawn.n_classes, weights=w).T)
            sigma, p2 = _from_gram(s, v.T @ ftt, n, d, thuml=False)
        else:
            s, u = eigh(weighted_outer(x, w))
            root = np.sqrt(w)
            ut = (u.T @ (root[:, None] * tr) if regression
                  else class_sums(u, drawn.codes, drawn.n_classes, weights=root).T)
            sigma, p2 = _from_outer(s, ut, n, d, thuml=False)
        return sigma, p2, t2, n

    def kernel(counts: np.ndarray) -> float:
        sigma, p2, t2, n = prepared(counts)
        return float(_full_d_fixed_point(sigma, p2, t2, n, tol=float(tol), max_iter=int(max_iter)).mean())

    def batch(many) -> list[tuple[float | None, str | None, list[str]]]:
        """``kernel`` on many resamples at once, ``(value, error, warnings)`` each: the fixed points of all
        their columns run as one iteration (a column's iterates are its own, so each value is the one
        ``kernel`` returns; the per-iteration overhead is paid once instead of once per resample)."""
        out: list = [None] * len(many)
        groups: dict[int, list] = {}
        for j, counts in enumerate(many):
            try:
                sigma, p2, t2, n = prepared(counts)
            except ValueError as exc:
                out[j] = (None, str(exc), [])
                continue
            groups.setdefault(sigma.shape[0], []).append((j, sigma, p2, t2, n))
        for items in groups.values():
            widths = [p2.shape[1] for _, _, p2, _, _ in items]
            sig = np.concatenate([np.broadcast_to(sg[:, None], p2.shape) for _, sg, p2, _, _ in items], axis=1)
            p2s = np.concatenate([p2 for _, _, p2, _, _ in items], axis=1)
            t2s = np.concatenate([t2 for _, _, _, t2, _ in items])
            ns = np.concatenate([np.full(w, float(n)) for w, (_, _, _, _, n) in zip(widths, items, strict=True)])
            s_max = np.concatenate([np.full(w, sg.max() if sg.size else 1.0)
                                    for w, (_, sg, _, _, _) in zip(widths, items, strict=True)])
            evidence, unconverged = _fixed_point_columns(sig, p2s, t2s, ns, s_max, tol=float(tol),
                                                         max_iter=int(max_iter))
            bounds = np.cumsum([0, *widths])
            for (j, *_), lo, hi in zip(items, bounds[:-1], bounds[1:], strict=True):
                missed = int(((unconverged >= lo) & (unconverged < hi)).sum())
                notes = [_unconverged_message(missed, int(hi - lo), float(tol), int(max_iter))] if missed else []
                out[j] = (float(evidence[lo:hi].mean()), None, notes)
        return out

    kernel.batch = batch  # type: ignore[attr-defined]
    return kernel


def _full_d_fixed_point(sigma, p2, t2, n, *, tol, max_iter):
    """MacKay fixed point on all columns at once; returns the full-D evidence / N per column."""
    k_cols = p2.shape[1]
    s_max = sigma.max() if sigma.size else 1.0
    evidence, unconverged = _fixed_point_columns(np.broadcast_to(sigma[:, None], p2.shape), p2, t2,
                                                 np.full(k_cols, float(n)), np.full(k_cols, s_max),
                                                 tol=tol, max_iter=max_iter)
    if unconverged.size:
        warnings.warn(_unconverged_message(unconverged.size, k_cols, tol, max_iter), ConvergenceWarning,
                      stacklevel=3)
    return evidence


def _unconverged_message(count: int, k_cols: int, tol: float, max_iter: int) -> str:
    return (f"LogME: {count} of {k_cols} column(s) did not converge in max_iter={max_iter} iterations "
            f"(tol={tol}); the returned evidence is that of the last iterate")


def _fixed_point_columns(sig, p2, t2, n, s_max, *, tol, max_iter):
    """The fixed point of independent columns, each with its own eigenvalues ``sig[:, j]`` (k, K), sample
    count ``n[j]`` and largest eigenvalue ``s_max[j]`` — the columns of several resamples solved together.
    A column's iterates depend on that column alone, so they are those of the column solved by itself.
    Returns the evidence / N per column and the indices of the columns that did not converge."""
    k_cols = p2.shape[1]
    # Out-of-span residual: the part of t orthogonal to the column space of F.
    r0 = np.maximum(t2 - p2.sum(axis=0), 0.0)
    # Tiny scale-aware floors keep α, β finite when the evidence is maximised at the boundary
    # (a perfect fit drives β → ∞); they are 1e-12 relative and do not move interior optima.
    eps_r = 1e-12 * t2
    eps_m = 1e-12 * t2 / s_max
    alpha = np.ones(k_cols)
    beta = np.ones(k_cols)
    active = np.arange(k_cols)
    for _ in range(max_iter):
        if active.size == 0:
            break
        a, b = alpha[active], beta[active]
        lam = a / b
        pa = p2[:, active]
        sa = sig[:, active]
        denom = sa + lam[None, :]
        gamma = (sa / denom).sum(axis=0)
        m2 = (sa * pa / denom**2).sum(axis=0)
        res2 = ((lam[None, :] / denom) ** 2 * pa).sum(axis=0) + r0[active]
        a_new = gamma / (m2 + eps_m[active])
        b_new = (n[active] - gamma) / (res2 + eps_r[active])
        alpha[active], beta[active] = a_new, b_new
        done = np.abs(a_new / b_new - lam) <= tol * lam
        active = active[~done]
    lam = alpha / beta
    denom = sig + lam[None, :]
    m2 = (sig * p2 / denom**2).sum(axis=0)
    res2 = ((lam[None, :] / denom) ** 2 * p2).sum(axis=0) + r0
    k = sig.shape[0]
    # log|αI_D + βFᵀF| = Σ_k log(α + βσ_i) + (D − k) log α; the D log α terms cancel to k/2 log α.
    logdet_k = k * np.log(beta) + np.log(denom).sum(axis=0)
    evidence = (
        k / 2.0 * np.log(alpha)
        + n / 2.0 * np.log(beta)
        - 0.5 * logdet_k
        - beta / 2.0 * res2
        - alpha / 2.0 * m2
        - n / 2.0 * math.log(2 * math.pi)
    )
    return evidence / n, active


def _thuml_fixed_point(sigma, p2, t2, n, d):
    """Reproduction of thuml/LogME ``_fit_fixed_point`` (for comparison only)."""
    k_cols = p2.shape[1]
    res_x2 = t2 - p2.sum(axis=0)
    sig = sigma[:, None]
    alpha = np.ones(k_cols)
    beta = np.ones(k_cols)
    m2_keep = np.zeros(k_cols)
    res2_keep = np.zeros(k_cols)
    running = np.ones(k_cols, dtype=bool)
    for _ in range(11):
        t = alpha / beta
        gamma = (sig / (sig + t)).sum(axis=0)
        m2 = (sig * p2 / (t + sig) ** 2).sum(axis=0)
        res2 = (p2 / (1 + sig / t) ** 2).sum(axis=0) + res_x2
        a_new = gamma / (m2 + 1e-5)
        b_new = (n - gamma) / (res2 + 1e-5)
        alpha = np.where(running, a_new, alpha)
        beta = np.where(running, b_new, beta)
        m2_keep = np.where(running, m2, m2_keep)
        res2_keep = np.where(running, res2, res2_keep)
        stop = np.abs(a_new / b_new - t) / t <= 1e-3
        running = running & ~stop
        if not running.any():
            break
    evidence = (
        d / 2.0 * np.log(alpha)
        + n / 2.0 * np.log(beta)
        - 0.5 * np.log(alpha[None, :] + beta[None, :] * sig).sum(axis=0)
        - beta / 2.0 * res2_keep
        - alpha / 2.0 * m2_keep
        - n / 2.0 * math.log(2 * math.pi)
    )
    return evidence / n
