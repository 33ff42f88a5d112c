"""What the process launcher says about this job, read from environment variables.

``mpiexec``/``srun`` tell each process its rank and the job size through
environment variables before MPI is initialised.  dtnn reads them for two reasons:

* to decide whether to initialise MPI at all (a plain ``python`` run never does);
* to catch the classic mismatch: the job was started with one MPI's launcher but
  mpi4py is linked against another MPI, so every process initialises as a singleton
  ("rank 0 of 1") and N independent copies train the same thing.
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

#: (size variable, rank variable, who sets them)
LAUNCHER_VARS: Tuple[Tuple[str, str, str], ...] = (
    ("PMI_SIZE", "PMI_RANK", "MPICH/Intel MPI (hydra) or srun --mpi=pmi2"),
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "Open MPI (mpirun/prterun)"),
    ("MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK", "MVAPICH"),
    ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "Slurm srun"),
)


def _int(value: Optional[str]) -> Optional[int]:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def launcher_size(env: Optional[Dict[str, str]] = None) -> Tuple[int, str]:
    """The job size announced by a launcher (1 if none) and the variable that said so."""
    env = os.environ if env is None else env
    for size_var, _rank_var, _who in LAUNCHER_VARS:
        n = _int(env.get(size_var))
        if n is not None and n > 1:
            return n, size_var
    return 1, ""


def launcher_rank(env: Optional[Dict[str, str]] = None) -> Optional[int]:
    env = os.environ if env is None else env
    for _size_var, rank_var, _who in LAUNCHER_VARS:
        r = _int(env.get(rank_var))
        if r is not None:
            return r
    return None


def mpi_requested(env: Optional[Dict[str, str]] = None) -> Optional[bool]:
    """``DTNN_MPI``: "1" forces the MPI context, "0" forces serial, unset = detect."""
    env = os.environ if env is None else env
    value = env.get("DTNN_MPI", "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


def mismatch_message(env_size: int, env_var: str, mpi_size: int) -> str:
    """Explains "every rank says rank 0 of 1" when the launcher started ``env_size``."""
    who = next((w for s, _r, w in LAUNCHER_VARS if s == env_var), "the launcher")
    try:
        from mpi4py import MPI
        lib = MPI.Get_library_version().strip().splitlines()[0]
    except Exception:  # pragma: no cover - only for the message
        lib = "unknown"
    return (f"launcher/MPI mismatch: {env_var}={env_size} ({who}) says this job has "
            f"{env_size} processes, but MPI reports a world of {mpi_size}: every process "
            f"would train alone. mpi4py is linked against '{lib}'; start the job with that "
            f"MPI's own mpiexec (for the pip 'mpich' wheel: the mpiexec in the same venv "
            f"as python), or rebuild mpi4py against the MPI whose launcher you use "
            f"(pip install --no-binary mpi4py mpi4py). Set DTNN_MPI=0 to run single "
            f"processes on purpose.")
