"""Linear-algebra helpers of the Gram-based kernels (inputs already validated, float64).

Each takes either a numpy array (CPU) or a torch tensor (any device) and answers in the same kind, so one
kernel body serves both; torch CPU tensors are routed through numpy.

LAPACK on the small d×d matrices (eigh, Cholesky) runs with one OpenBLAS thread: OpenBLAS's threaded
tridiagonalisation and factorisations synchronise per panel and collapse when the cores are shared
(measured on a loaded 2-core machine: eigh of 1024×1024 4.4 s with 2 threads, 0.53 s with 1; Cholesky
0.28 s vs 0.067 s). The O(n·d²) products keep the full pool.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np
import scipy.linalg
import scipy.sparse
import torch
from threadpoolctl import ThreadpoolController

from ._inputs import EncodedLabels

_CONTROLLER = ThreadpoolController()


def xp_of(x: np.ndarray | torch.Tensor):
    """The array module of ``x``: ``numpy`` or ``torch``."""
    return torch if isinstance(x, torch.Tensor) else np


def to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """A small result (d×d or smaller) as a numpy array on the CPU."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


_lock = threading.Lock()
_blas_users = 0  # open contexts that want one BLAS thread (the limit is process-wide)
_torch_users = 0  # open single_thread_compute contexts (torch's intra-op pool is process-wide too)
_blas_limiter = None
_torch_threads = 0


def _enter(torch_too: bool) -> None:
    global _blas_users, _torch_users, _blas_limiter, _torch_threads
    with _lock:
        if _blas_users == 0:
            _blas_limiter = _CONTROLLER.limit(limits=1, user_api="blas")
        _blas_users += 1
        if torch_too:
            if _torch_users == 0:
                _torch_threads = torch.get_num_threads()
                torch.set_num_threads(1)
            _torch_users += 1


def _leave(torch_too: bool) -> None:
    global _blas_users, _torch_users, _blas_limiter
    with _lock:
        if torch_too:
            _torch_users -= 1
            if _torch_users == 0:
                torch.set_num_threads(_torch_threads)
        _blas_users -= 1
        if _blas_users == 0 and _blas_limiter is not None:
            _blas_limiter.restore_original_limits()
            _blas_limiter = None


@contextlib.contextmanager
def single_thread_blas() -> Iterator[None]:
    """Context manager limiting numpy's and scipy's OpenBLAS to one thread. The limit is process-wide and
    counted: it is set when the first open context begins and lifted when the last one ends, whichever
    threads they run in (inside an open one a context costs a lock — setting the limit queries every BLAS
    library, about a millisecond on a loaded machine, which the many small calls of a bootstrap would pay
    each time)."""
    _enter(False)
    try:
        yield
    finally:
        _leave(False)


@contextlib.contextmanager
def single_thread_compute() -> Iterator[None]:
    """:func:`single_thread_blas` and torch's intra-op pool at one thread, for units that run at the same
    time on threads of one process (parallel units instead of parallel products: a thread pool per
    product on every unit oversubscribes the cores). Process-wide and counted like the BLAS limit: a job
    embedding on another worker thread meanwhile runs its forward passes on one thread too, on cores the
    units keep busy."""
    _enter(True)
    try:
        yield
    finally:
        _leave(True)


def gram(x):
    """``xᵀx`` in float64 (BLAS ``syrk`` through numpy on the CPU)."""
    if isinstance(x, torch.Tensor):
        if x.device.type == "cpu":
            return torch.from_numpy(gram(np.ascontiguousarray(x.numpy())))
        return x.T @ x
    x = np.ascontiguousarray(x)
    return x.T @ x


def outer_gram(x):
    """``xxᵀ`` in float64 (used when n < d)."""
    if isinstance(x, torch.Tensor):
        if x.device.type == "cpu":
            return torch.from_numpy(outer_gram(np.ascontiguousarray(x.numpy())))
        return x @ x.T
    x = np.ascontiguousarray(x)
    return x @ x.T


def class_sums(x, codes, n_classes: int, weights=None):
    """Per-class column sums of ``x`` (C, d), of ``weights[:, None] * x`` when ``weights`` (n,) is given.
    ``codes`` and ``weights`` are arrays of the same kind as ``x``."""
    if isinstance(x, torch.Tensor):
        out = torch.zeros((n_classes, x.shape[1]), dtype=x.dtype, device=x.device)
        out.index_add_(0, codes, x if weights is None else weights[:, None] * x)
        return out
    n = x.shape[0]
    # One sparse C×n (weighted) one-hot product: a single O(n·d) pass (np.add.at is ~10× slower).
    data = np.ones(n) if weights is None else weights
    onehot = scipy.sparse.csr_array((data, (codes, np.arange(n))), shape=(n_classes, n))
    return np.asarray(onehot @ x)


def codes_like(labels: EncodedLabels, x):
    """Label codes as an int64 array of the same kind (and device) as ``x``."""
    if isinstance(x, torch.Tensor):
        return torch.from_numpy(labels.codes).to(x.device)
    return labels.codes


def counts_like(labels: EncodedLabels, x):
    """Class counts as float64, of the same kind (and device) as ``x``."""
    counts = labels.counts.astype(np.float64)
    if isinstance(x, torch.Tensor):
        return torch.from_numpy(counts).to(x.device)
    return counts



def centered(x):
    """A new, column-centred copy of ``x`` (never in place)."""
    return x - x.mean(axis=0, keepdims=True)


def center_(x):
    """Centre the columns of ``x`` in place (``x`` must be owned, see ``as_array(owned=True)``); returns
    the column means that were subtracted."""
    mu = x.mean(axis=0, keepdims=True)
    x -= mu
    return mu[0]


def eigh(a):
    """Symmetric eigendecomposition (ascending); single-threaded LAPACK on the CPU."""
    if isinstance(a, torch.Tensor):
        if a.device.type == "cpu":
            w, v = eigh(a.numpy())
            return torch.from_numpy(w), torch.from_numpy(v)
        return torch.linalg.eigh(a)
    with single_thread_blas():
        return np.linalg.eigh(a)


def solve_psd(a, b):
    """``a⁻¹ b`` for a symmetric PSD ``a`` (Cholesky; the pseudo-inverse when ``a`` is singular)."""
    if isinstance(a, torch.Tensor):
        if a.device.type == "cpu":
            return torch.from_numpy(solve_psd(a.numpy(), b.numpy()))
        chol, info = torch.linalg.cholesky_ex(a)
        if int(info) == 0:
            return torch.cholesky_solve(b, chol)
        return torch.linalg.pinv(a, hermitian=True) @ b
    with single_thread_blas():
        try:
            factor = scipy.linalg.cho_factor(a, lower=True, check_finite=False, overwrite_a=False)
        except np.linalg.LinAlgError:
            return np.linalg.pinv(a, hermitian=True) @ b
        return scipy.linalg.cho_solve(factor, b, check_finite=False)


def logdet_identity_plus(g, scale: float) -> float:
    """log det(I + scale · g) for a PSD matrix g (Cholesky, eigenvalues as a fallback)."""
    if isinstance(g, torch.Tensor) and g.device.type == "cpu":
        g = g.numpy()
    if isinstance(g, np.ndarray):
        a = scale * g
        a[np.diag_indices_from(a)] += 1.0
        with single_thread_blas():
            try:
                return float(2.0 * np.log(np.diagonal(np.linalg.cholesky(a))).sum())
            except np.linalg.LinAlgError:
                return float(np.log(np.clip(np.linalg.eigvalsh(a), 1.0, None)).sum())
    a = scale * g
    a.diagonal().add_(1.0)
    chol, info = torch.linalg.cholesky_ex(a)
    if int(info) == 0:
        return float(2.0 * torch.log(torch.diagonal(chol)).sum())
    return float(torch.log(torch.clamp(torch.linalg.eigvalsh(a), min=1.0)).sum())


def svdvals(a):
    """Singular values of a small (d×d) matrix; single-threaded LAPACK on the CPU."""
    if isinstance(a, torch.Tensor):
        if a.device.type == "cpu":
            return torch.from_numpy(svdvals(a.numpy()))
        return torch.linalg.svdvals(a)
    with single_thread_blas():
        return np.linalg.svd(a, compute_uv=False)
