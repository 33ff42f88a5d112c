"""Per-image GEMMs split over the batch, one thread per part, BLAS single-threaded.

A 1x1 convolution (and im2col with one image per chunk) is N independent GEMMs of
K x C x P.  numpy's matmul runs them one after the other and OpenBLAS threads *each*
of them, so with 2 threads every small GEMM pays a fork/join and its threads wait on
each other.  Measured on the 2-core Xeon (AVX2 paths, 2 threads, batch 64;
benchmarks/results/pointwise.md): 256->64 at 8x8 forward 2.64 ms unsplit against
1.21 ms with the batch split in two halves, each half on its own thread with OpenBLAS
at 1 thread (backward-data 2.69 vs 1.12 ms; 128->256 at 16x16 forward 8.57 vs 6.86 ms).
Each image's GEMM is computed by one thread in the same order either way, so the
results are bit-identical.

``split_batch(fn, n, work)`` runs ``fn(lo, hi)`` over [0, n) in ``threads`` contiguous
parts: the calling thread takes the last part, a small persistent pool the others.
It only splits when more than one thread is configured (``dtnn.threads``), the batch
has an image per thread and the work is worth a thread hand-off; otherwise it is one
call ``fn(0, n)``.  ``fn`` must only touch its own rows of shared arrays (no
thread-local workspaces).  One split runs at a time per process (a second caller, e.g.
another serving thread, runs unsplit), because the BLAS thread count is process-wide.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional

#: below this many flops a hand-off to another thread (~20-50 us) costs more than it saves
MIN_SPLIT_FLOPS = 4e6

_pool: Optional[ThreadPoolExecutor] = None
_pool_size = 0
_blas = None          # threadpoolctl controllers of the BLAS libraries (None: not looked up)
_busy = threading.Lock()


def _blas_controllers() -> List:
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas = [c for c in ThreadpoolController().lib_controllers
                     if c.user_api == "blas"]
        except Exception:   # threadpoolctl missing or failing: never split
            _blas = []
    return _blas


def _threads() -> int:
    from dtnn.tune import current_threads
    return current_threads()


def split_batch(fn: Callable[[int, int], None], n: int, flops: float = float("inf")) -> None:
    """fn(lo, hi) over [0, n), split over the configured threads (see module doc)."""
    global _pool, _pool_size
    threads = min(_threads(), n)
    blas = _blas_controllers() if threads > 1 and flops >= MIN_SPLIT_FLOPS else []
    if not blas or not _busy.acquire(blocking=False):
        fn(0, n)
        return
    try:
        if _pool is None or _pool_size < threads - 1:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="dtnn-split")
            _pool_size = threads - 1
        bounds = [n * i // threads for i in range(threads + 1)]
        before = [c.get_num_threads() for c in blas]
        for c in blas:
            c.set_num_threads(1)
        try:
            futures = [_pool.submit(fn, bounds[i], bounds[i + 1])
                       for i in range(threads - 1)]
            fn(bounds[-2], bounds[-1])
            for f in futures:
                f.result()
        finally:
            for c, k in zip(blas, before):
                c.set_num_threads(k)
    finally:
        _busy.release()
