"""dtnn: distributed deep-learning training for CPU clusters (numpy/Cython kernels + MPI)."""

__version__ = "0.1.0"

import os as _os

# OpenMP threads that spin while waiting steal the core from the other MPI ranks on a
# shared host (measured: a 10x slow-down with 2 ranks on 2 cores).  Must be set before
# the OpenMP runtime loads, hence here; an explicit user setting wins.
# OpenBLAS reads its spin time when it loads (default 2^28 cycles, ~70 ms): after a
# multi-threaded GEMM its workers then busy-wait and halve the speed of the next torch
# or OpenMP call (measured: torch's conv 44.6 ms instead of 27.2 ms at 2 threads).
# If numpy (hence OpenBLAS) was imported before dtnn, this setting comes too late;
# dtnn.threads warns about it when more than one thread is asked for.
import sys as _sys
OPENBLAS_TIMEOUT_TOO_LATE = ("numpy" in _sys.modules
                             and "OPENBLAS_THREAD_TIMEOUT" not in _os.environ)
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "1")

# Large numpy/torch buffers come and go every training step; see dtnn/malloc.py.
from dtnn.malloc import tune_malloc as _tune_malloc  # noqa: E402

_tune_malloc()
