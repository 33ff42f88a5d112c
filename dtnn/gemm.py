"""Matrix products on dtnn's own OpenMP threads ("one thread pool", dtnn/threads.py).

numpy's matmul hands a GEMM to OpenBLAS, which threads it on a pthreads pool of its
own, while dtnn's kernels (fused convolutions, BatchNorm, pooling...) run on OpenMP
threads.  On 2 cores the two pools fight: OpenMP workers that spin after a region
take the core from OpenBLAS's workers (libgomp's default spin doubled vgg11_bn's
step), and with a short spin every OpenMP region pays a futex wake-up instead (lenet
at 2 threads ran in bimodal rounds of 3.2 and 5-8 ms).  When ``set_threads`` runs the
BLAS at one thread (``dtnn.threads.one_pool()``), :func:`matmul` cuts a GEMM (or a
stack of them) into one part per OpenMP thread and calls the BLAS's own sgemm,
single-threaded, on each (csrc/gemm.c): the same threads then run every kernel of a
step and can spin between them without taking a core from anyone.

Anywhere that does not apply (no OpenBLAS found, one thread, layouts BLAS cannot read,
other dtypes) it is ``np.matmul`` -- the twin and the oracle of the tests.
"""
from __future__ import annotations

import ctypes
from typing import Optional, Tuple

import numpy as np

#: below this many flops a GEMM runs on the calling thread alone
MIN_PARALLEL_FLOPS = 2e5

_sgemm: Optional[Tuple[int, bool]] = None   # (address, 64-bit integers), (0, False): none
_ext = None


def _find_sgemm() -> Tuple[int, bool]:
    """Address of a loaded OpenBLAS's row-major ``cblas_sgemm`` and whether it takes
    64-bit integers; (0, False) when there is none (then numpy's matmul is used)."""
    global _sgemm, _ext
    if _sgemm is not None:
        return _sgemm
    _sgemm = (0, False)
    try:
        from dtnn._kernels import _twins_forced
        if _twins_forced():
            return _sgemm
        import importlib
        _ext = importlib.import_module("dtnn._kernels._gemm")
        from threadpoolctl import ThreadpoolController
        for c in ThreadpoolController().lib_controllers:
            if c.internal_api != "openblas":
                continue
            fn = getattr(c.dynlib, f"{c._symbol_prefix}cblas_sgemm{c._symbol_suffix}", None)
            config = getattr(c.dynlib, f"{c._symbol_prefix}openblas_get_config"
                                       f"{c._symbol_suffix}", None)
            if fn is None or config is None:
                continue
            config.restype = ctypes.c_char_p
            ilp64 = b"USE64BITINT" in (config() or b"")
            _sgemm = (ctypes.cast(fn, ctypes.c_void_p).value or 0, ilp64)
            break
    except Exception:     # no extension, no threadpoolctl, an unexpected BLAS: numpy
        _sgemm = (0, False)
    return _sgemm


def available() -> bool:
    """Whether :func:`matmul` can run on the OpenMP threads here (an OpenBLAS sgemm
    and the compiled ``_gemm`` module were found)."""
    return _find_sgemm()[0] != 0


def _team_threads(flops: float) -> int:
    """Threads for a product of ``flops``: the OpenMP pool's in the one-pool setting
    (dtnn.threads), else -- or below MIN_PARALLEL_FLOPS -- the calling thread alone."""
    from dtnn.threads import one_pool, pool_threads
    return pool_threads() if one_pool() and flops >= MIN_PARALLEL_FLOPS else 1


def matmul(a: np.ndarray, b: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``np.matmul(a, b, out=out)`` for 2-D or 3-D float32 operands (3-D: a stack, a
    2-D operand broadcast over it), computed on dtnn's OpenMP threads with the BLAS at
    one thread when ``dtnn.threads.one_pool()`` holds (see the module doc)."""
    from dtnn.threads import one_pool
    if (one_pool() and a.dtype == np.float32 and b.dtype == np.float32
            and a.ndim in (2, 3) and b.ndim in (2, 3) and available()):
        batch = max(a.shape[0] if a.ndim == 3 else 1, b.shape[0] if b.ndim == 3 else 1)
        m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
        shape = (batch, m, n) if max(a.ndim, b.ndim) == 3 else (m, n)
        if out is None:
            out = np.empty(shape, np.float32)
        if (out.shape == shape and out.dtype == np.float32 and b.shape[-2] == k
                and (a.ndim == 2 or a.shape[0] in (1, batch))
                and (b.ndim == 2 or b.shape[0] in (1, batch))):
            threads = _team_threads(2.0 * batch * m * n * k)
            a3 = a if a.ndim == 3 else a[None]
            b3 = b if b.ndim == 3 else b[None]
            o3 = out if out.ndim == 3 else out[None]
            if _ext.matmul3(_sgemm[0], _sgemm[1], a3, b3, o3, threads):
                return out
    if out is None:
        return np.matmul(a, b)
    return np.matmul(a, b, out=out)


def gemm_into(a: np.ndarray, b: np.ndarray, out: np.ndarray, beta: float = 0.0) -> None:
    """``out = a @ b + beta * out`` for 3-D float32 stacks (a batch of 1 broadcasts);
    an ``out`` of batch 1 against a longer stack sums the products over the stack.  On
    dtnn's OpenMP threads in the one-pool setting, else on the calling thread; the
    BLAS's own sgemm whenever one was found (beta and the sum cost no temporaries),
    numpy otherwise."""
    if available():
        G = max(a.shape[0], b.shape[0])
        threads = _team_threads(2.0 * G * a.shape[1] * a.shape[2] * b.shape[2])
        if _ext.matmul3(_sgemm[0], _sgemm[1], a, b, out, threads, beta):
            return
    gemm_into_twin(a, b, out, beta)


def gemm_into_twin(a: np.ndarray, b: np.ndarray, out: np.ndarray, beta: float = 0.0
                   ) -> None:
    """numpy twin of :func:`gemm_into`."""
    prod = np.matmul(a, b)
    if out.shape[0] == 1 and prod.shape[0] > 1:
        prod = prod.sum(axis=0, keepdims=True)
    if beta == 0.0:
        out[...] = prod
    else:
        out *= np.float32(beta)
        out += prod


def transpose_into(src: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[...] = src.T`` for C-contiguous float32 2-D arrays, compiled (OpenMP over
    dtnn's threads) where the extension is built: numpy's strided copy of a (K*C, 9)
    filter matrix took 0.6 ms for 256x256 3x3 filters."""
    _find_sgemm()
    if (_ext is not None and src.dtype == np.float32 and out.dtype == np.float32
            and src.ndim == 2 and src.flags.c_contiguous and out.flags.c_contiguous):
        from dtnn.threads import pool_threads
        _ext.transpose2d(src, out, max(1, pool_threads()))
    else:
        out[...] = src.T
    return out
