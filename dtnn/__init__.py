"""dtnn: distributed deep-learning training for CPU clusters (numpy/Cython kernels + MPI)."""

__version__ = "0.1.0"

import os as _os

# OpenMP threads that spin while waiting steal the core from the other MPI ranks on a
# shared host (measured: a 10x slow-down with 2 ranks on 2 cores).  Must be set before
# the OpenMP runtime loads, hence here; an explicit user setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "1")
