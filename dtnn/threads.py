"""Thread control: one place that decides how many BLAS/OpenMP/torch threads run.

With several MPI ranks on a few cores, every library defaulting to "all cores" means
oversubscription, and OpenMP spin-waiting then makes everything crawl.  So dtnn
sets the count explicitly through threadpoolctl (which reaches OpenBLAS, MKL and the
OpenMP runtime already loaded) and through torch, instead of hoping the environment
variables were exported before the libraries loaded.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Dict, List

_limiter = None


def default_threads(ranks_on_host: int = 1) -> int:
    """Cores of this host shared evenly by the ranks on it (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, ranks_on_host))


def set_threads(n: int) -> int:
    """Limit BLAS, OpenMP and torch to ``n`` threads in this process; returns n."""
    global _limiter
    from threadpoolctl import threadpool_limits

    n = max(1, int(n))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)  # for anything loaded later (and child processes)
    import dtnn._kernels  # noqa: F401  -- load our OpenMP runtime so it gets limited too
    if n > 1:
        _fix_openblas_spin()
    global _threads, _one_pool
    _threads = n
    # One thread pool: the BLAS at one thread and dtnn's GEMMs split over the OpenMP
    # threads (dtnn.gemm), so OpenMP workers spinning between regions never run
    # against OpenBLAS's own workers.  DTNN_ONE_POOL=0 keeps the BLAS at n threads.
    _one_pool = (n > 1 and os.environ.get("DTNN_ONE_POOL", "1").strip() != "0"
                 and _gemm_available())
    if _one_pool:
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        _limiter = threadpool_limits(limits={"openmp": n, "blas": 1})
    else:
        _limiter = threadpool_limits(limits=n)
    _warn_if_openblas_spins(n)
    if "torch" in sys.modules:  # never import torch here: 1-2 s of start-up per rank
        configure_torch(sys.modules["torch"])
    return n


_threads = 0
_one_pool = False


def _gemm_available() -> bool:
    from dtnn import gemm
    return gemm.available()


def one_pool() -> bool:
    """Whether ``set_threads`` put the BLAS at one thread so that dtnn's GEMMs run on
    its OpenMP threads (``dtnn.gemm``): more than one thread, an OpenBLAS whose sgemm
    dtnn can call, and ``DTNN_ONE_POOL`` not 0."""
    return _one_pool


def pool_threads() -> int:
    """The thread count ``set_threads`` gave dtnn's OpenMP pool (0: never called)."""
    return _threads


def configure_torch(torch) -> None:
    """Give torch the thread count of ``set_threads`` (called where dtnn imports torch;
    torch imported by other code reads OMP_NUM_THREADS, which set_threads exports)."""
    if _threads:
        torch.set_num_threads(_threads)


def _fix_openblas_spin() -> None:
    """Make import order irrelevant: when numpy (hence OpenBLAS) loaded before dtnn could
    set ``OPENBLAS_THREAD_TIMEOUT``, make each loaded OpenBLAS read its environment
    again (``openblas_read_env``) and stop its worker threads
    (``blas_thread_shutdown_``, what its own fork handler calls); the next threaded
    call starts them with the short spin.  Only where both functions are exported and
    the timeout then reads 1; anything else is left as it was (and warned about)."""
    import dtnn
    if not dtnn.OPENBLAS_TIMEOUT_TOO_LATE:
        return
    import ctypes
    from threadpoolctl import threadpool_info
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = "1"
    fixed = 0
    libraries = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
    for info in libraries:
        try:
            lib = ctypes.CDLL(info["filepath"])
            lib.openblas_read_env()
            if lib.openblas_thread_timeout() != 1:
                continue
            lib.blas_thread_shutdown_()
            fixed += 1
        except (OSError, AttributeError):
            continue
    if libraries and fixed == len(libraries):
        dtnn.OPENBLAS_TIMEOUT_TOO_LATE = False


def _warn_if_openblas_spins(n: int) -> None:
    import dtnn
    if n > 1 and dtnn.OPENBLAS_TIMEOUT_TOO_LATE and not getattr(_warn_if_openblas_spins,
                                                                "done", False):
        _warn_if_openblas_spins.done = True
        from dtnn.log import get_logger
        get_logger().warning(
            "this OpenBLAS was loaded before dtnn and could not be told to stop "
            "busy-waiting after each GEMM (it slows the next torch/OpenMP call); "
            "import dtnn first or export OPENBLAS_THREAD_TIMEOUT=1")


def thread_report() -> List[Dict[str, Any]]:
    """What threadpoolctl sees: one entry per BLAS/OpenMP library loaded."""
    from threadpoolctl import threadpool_info
    return [{"api": i.get("user_api"), "library": i.get("internal_api"),
             "threads": i.get("num_threads"), "version": i.get("version")}
            for i in threadpool_info()]
