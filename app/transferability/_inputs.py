"""Input validation and array plumbing shared by every public metric.

Public functions validate once, here, and hand trusted arrays to their private kernels. Nothing in this
module writes into a caller's array: conversions either return a fresh array or a read-only view that the
kernels only read.

Arrays: numpy arrays, torch tensors (any device) and nested sequences are accepted. The Gram-based
kernels (LogME, H-score, GBC, SFDA, TransRate) take :func:`as_array`'s result: a float64 numpy array for
CPU inputs, so that the whole CPU path runs on numpy/scipy and one BLAS thread pool, and a float64 tensor
for CUDA inputs, so that their heavy linear algebra runs on the GPU; the helpers in ``_linalg`` accept either.
Their small tails (the LogME fixed point, GBC's class pairs) run in numpy. Other kernels use
:func:`as_matrix` (always a tensor). The Gram matrix goes through numpy on the CPU, whose ``x.T @ x``
is BLAS ``syrk``, twice as fast as a general matrix product.

Labels: any hashable values (integers, strings, ...) are re-encoded to ``0..C-1`` in sorted order of the
distinct values (``np.unique``); absent classes therefore never produce empty columns. Floating labels are
accepted only when every value is integral.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class EncodedLabels:
    """Labels re-encoded to ``0..C-1``.

    Attributes
    ----------
    codes : ndarray of shape (n,), int64
        Code of each sample.
    classes : ndarray of shape (C,)
        The original label value of each code, sorted.
    counts : ndarray of shape (C,), int64
        Number of samples per code.
    """

    codes: np.ndarray
    classes: np.ndarray
    counts: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(self.classes.shape[0])


def _to_numpy_any(x: object, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be converted to an array: {exc}") from exc


def _check_finite_tensor(t: torch.Tensor, name: str) -> None:
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        idx = tuple(int(i) for i in torch.nonzero(~finite)[0].tolist())
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf), first at index {idx}")


def as_array(
    x: object,
    name: str,
    *,
    min_rows: int = 2,
    min_cols: int = 1,
    owned: bool = False,
) -> np.ndarray | torch.Tensor:
    """Validate a 2-D real matrix and return it as float64: a numpy array for CPU inputs (numpy arrays,
    sequences and CPU tensors), a tensor on its device for CUDA tensors.

    With ``owned=False`` the result may share memory with ``x`` (when ``x`` is already float64) and callers
    must treat it as read-only. With ``owned=True`` it is a fresh array the caller may modify in place
    (copied only when the float64 conversion did not already copy). CPU kernels stay in numpy/scipy, so
    that one BLAS thread pool does the work (torch's OpenMP pool and OpenBLAS's pthreads alternating on
    the same cores oversubscribe them).
    """
    a, fresh = _as_array(x, name, min_rows, min_cols)
    if owned and not fresh:
        a = a.clone() if isinstance(a, torch.Tensor) else a.copy()
    return a


def _as_array(x: object, name: str, min_rows: int, min_cols: int) -> tuple[np.ndarray | torch.Tensor, bool]:
    """(float64 array, whether it is a fresh copy that shares no memory with ``x``)."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.is_complex():
            raise ValueError(f"{name} must be real, got complex dtype {t.dtype}")
        if t.device.type != "cpu":
            _check_shape(tuple(t.shape), name, min_rows, min_cols)
            t64 = t.to(torch.float64)
            _check_finite_tensor(t64, name)
            return t64, t64.data_ptr() != t.data_ptr()
        x = t.numpy() if t.dtype != torch.bfloat16 else t.to(torch.float64).numpy()
    arr = _to_numpy_any(x, name)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real, got complex dtype {arr.dtype}")
    _check_shape(arr.shape, name, min_rows, min_cols)
    out = np.asarray(arr, dtype=np.float64)
    # A finite sum proves every entry finite (NaN and ±inf propagate) without an n×d mask; only a
    # non-finite sum (a bad entry, or an overflowing one) pays for the element-wise check.
    finite = np.isfinite(out) if not np.isfinite(out.sum()) else None
    if finite is not None and not finite.all():
        bad = int(out.size - np.count_nonzero(finite))
        idx = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf), first at index {idx}")
    fresh = out is not arr and out.flags.writeable and not np.may_share_memory(out, arr)
    return out, fresh


def _check_shape(shape: tuple, name: str, min_rows: int, min_cols: int) -> None:
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {tuple(shape)}")
    n, d = shape
    if n < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (samples), got shape {tuple(shape)}")
    if d < min_cols:
        raise ValueError(f"{name} needs at least {min_cols} column(s), got shape {tuple(shape)}")


def as_matrix(
    x: object,
    name: str,
    *,
    min_rows: int = 2,
    min_cols: int = 1,
) -> torch.Tensor:
    """Like :func:`as_array` but always a float64 tensor on the input's device (for torch kernels)."""
    a, _ = _as_array(x, name, min_rows, min_cols)
    if isinstance(a, torch.Tensor):
        return a
    if not a.flags.writeable:
        # torch.from_numpy warns on read-only memory; a copy keeps the caller's buffer untouched.
        a = a.copy()
    return torch.from_numpy(a)


def as_numpy_matrix(x: object, name: str, *, min_rows: int = 2, min_cols: int = 1) -> np.ndarray:
    """Like :func:`as_matrix` but returns a float64 numpy array on the CPU (for scikit-learn kernels)."""
    return as_matrix(x, name, min_rows=min_rows, min_cols=min_cols).cpu().numpy()


def encode_labels(
    labels: object,
    n: int,
    name: str = "labels",
    *,
    min_classes: int = 2,
    min_per_class: int = 1,
) -> EncodedLabels:
    """Validate 1-D class labels of length ``n`` and re-encode them to ``0..C-1``."""
    arr = _to_numpy_any(labels, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,), got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries but the features have {n} rows")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must not be complex, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains non-finite values, e.g. {arr[~np.isfinite(arr)][0]!r}")
        if not np.all(arr == np.round(arr)):
            bad = arr[arr != np.round(arr)][0]
            raise ValueError(
                f"{name} must be class labels; got non-integral float {bad!r} "
                "(pass targets=... for a regression task)"
            )
        arr = arr.astype(np.int64)
    try:
        classes, codes = np.unique(arr, return_inverse=True)
    except TypeError as exc:
        raise ValueError(f"{name} are not usable as classes (values are not mutually comparable): {exc}") from exc
    codes = codes.reshape(-1).astype(np.int64)
    counts = np.bincount(codes, minlength=classes.shape[0]).astype(np.int64)
    if classes.shape[0] < min_classes:
        raise ValueError(
            f"{name} must contain at least {min_classes} distinct classes, got {classes.shape[0]} "
            f"({classes[:5].tolist()})"
        )
    if min_per_class > 1 and counts.min() < min_per_class:
        small = classes[counts < min_per_class]
        raise ValueError(
            f"{name}: every class needs at least {min_per_class} samples; class {small[0]!r} has "
            f"{int(counts[counts < min_per_class][0])} ({small.shape[0]} class(es) too small)"
        )
    return EncodedLabels(codes=codes, classes=classes, counts=counts)


def as_targets(targets: object, n: int, name: str = "targets") -> torch.Tensor:
    """Validate regression / multi-label targets: (n,) or (n, k) real values → (n, k) float64 tensor."""
    if isinstance(targets, torch.Tensor):
        t = targets.detach()
    else:
        arr = _to_numpy_any(targets, name)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
        arr = np.array(arr, dtype=np.float64)  # a copy: targets are small
        t = torch.from_numpy(arr)
    if t.ndim == 1:
        t = t.reshape(-1, 1)
    if t.ndim != 2:
        raise ValueError(f"{name} must be (n_samples,) or (n_samples, n_targets), got shape {tuple(t.shape)}")
    if t.shape[0] != n:
        raise ValueError(f"{name} has {t.shape[0]} rows but the features have {n} rows")
    if t.shape[1] < 1:
        raise ValueError(f"{name} needs at least one column, got shape {tuple(t.shape)}")
    t = t.to(torch.float64)
    _check_finite_tensor(t, name)
    return t


def check_random_state(random_state: object) -> int:
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise ValueError(f"random_state must be an int, got {random_state!r}")
    return int(random_state)


def check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive_float(value: object, name: str) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def stratified_subsample(codes: np.ndarray, max_samples: int, random_state: int) -> np.ndarray:
    """Deterministic stratified subsample of at most ``max_samples`` indices, sorted.

    Each class keeps ``round(max_samples * n_c / n)`` samples (at least 1, or 2 when it had 2 or more),
    drawn with ``numpy.random.default_rng(random_state)``.
    """
    n = codes.shape[0]
    if n <= max_samples:
        return np.arange(n)
    rng = np.random.default_rng(random_state)
    counts = np.bincount(codes)
    keep_per_class = np.maximum(np.round(counts * (max_samples / n)).astype(np.int64), np.minimum(counts, 2))
    chosen = []
    for c in range(counts.shape[0]):
        members = np.flatnonzero(codes == c)
        if members.size:
            chosen.append(rng.choice(members, size=min(keep_per_class[c], members.size), replace=False))
    return np.sort(np.concatenate(chosen))


def codes_tensor(labels: EncodedLabels, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(labels.codes).to(device)


def check_counts(counts: object, n: int, *, min_total: int = 2) -> np.ndarray:
    """Validate a resample given as multiplicities: a 1-D array of ``n`` non-negative integers (how many
    times each row is drawn) with at least ``min_total`` draws in all; returned as int64."""
    arr = np.asarray(counts)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"counts must be 1-D with one entry per row ({n}), got shape {arr.shape}")
    integral = np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool
    if not integral and (arr.dtype.kind != "f" or not np.all(arr == np.round(arr))):
        raise ValueError(f"counts must be integers (multiplicities), got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if (arr < 0).any():
        raise ValueError(f"counts must be non-negative, got {int(arr.min())} at row {int(np.argmin(arr))}")
    if int(arr.sum()) < min_total:
        raise ValueError(f"counts must draw at least {min_total} rows in all, got {int(arr.sum())}")
    return arr
