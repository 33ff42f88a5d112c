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
    _limiter = threadpool_limits(limits=n)
    _warn_if_openblas_spins(n)
    global _threads
    _threads = n
    if "torch" in sys.modules:  # never import torch here: 1-2 s of start-up per rank
        configure_torch(sys.modules["torch"])
    return n


_threads = 0


def configure_torch(torch) -> None:
    """Give torch the thread count of ``set_threads`` (called where dtnn imports torch;
    torch imported by other code reads OMP_NUM_THREADS, which set_threads exports)."""
    if _threads:
        torch.set_num_threads(_threads)


def _warn_if_openblas_spins(n: int) -> None:
    import dtnn
    if n > 1 and dtnn.OPENBLAS_TIMEOUT_TOO_LATE and not getattr(_warn_if_openblas_spins,
                                                                "done", False):
        _warn_if_openblas_spins.done = True
        from dtnn.log import get_logger
        get_logger().warning(
            "numpy was imported before dtnn, so OpenBLAS workers busy-wait after each "
            "GEMM and slow down the next torch/OpenMP call; import dtnn first or export "
            "OPENBLAS_THREAD_TIMEOUT=1")


def thread_report() -> List[Dict[str, Any]]:
    """What threadpoolctl sees: one entry per BLAS/OpenMP library loaded."""
    from threadpoolctl import threadpool_info
    return [{"api": i.get("user_api"), "library": i.get("internal_api"),
             "threads": i.get("num_threads"), "version": i.get("version")}
            for i in threadpool_info()]
