"""Runs pytest in one rank of the MPI test job (see run_mpi.py).

``python _rank_wrapper.py LOG_DIR PYTEST_ARGS...``: ranks > 0 send their stdout and
stderr (file descriptors 1 and 2, so C-level output too) to ``LOG_DIR/rank<r>.log``;
every rank writes pytest's exit code to ``LOG_DIR/rank<r>.rc``.  The rank is read
from the launcher's environment, before MPI is initialised.
"""
import os
import sys

RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "SLURM_PROCID")


def launcher_rank() -> int:
    for var in RANK_VARS:
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def main() -> int:
    log_dir, args = sys.argv[1], sys.argv[2:]
    rank = launcher_rank()
    if rank > 0:
        fd = os.open(os.path.join(log_dir, f"rank{rank}.log"),
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p) != os.path.dirname(
        os.path.abspath(__file__))]  # do not shadow packages with this folder's modules
    import pytest
    code = int(pytest.main(args))
    with open(os.path.join(log_dir, f"rank{rank}.rc"), "w") as fh:
        fh.write(f"{code}\n")
    sys.stdout.flush()
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
