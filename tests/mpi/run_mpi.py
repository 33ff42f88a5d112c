#!/usr/bin/env python
"""Run the MPI test suite under ``mpiexec -n N`` (pytest-mpi), e.g.

    python tests/mpi/run_mpi.py -n 4            # what tests/run_all.sh does
    python tests/mpi/run_mpi.py -n 2 -- -k reducer -x

Rank 0's output goes to the console; every other rank's stdout/stderr go to
``<log dir>/rank<r>.log`` (a fresh temporary directory unless ``--log-dir``).  The
exit status is non-zero if ANY rank fails (each rank records pytest's exit code in
``rank<r>.rc``; a rank that left no code crashed), and the failing ranks' logs are
printed.  The whole job is killed after ``--timeout`` seconds (default 15 min), so a
deadlocked collective can never hang CI.  Every rank runs with one BLAS/OpenMP thread.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WRAPPER = os.path.join(HERE, "_rank_wrapper.py")


def find_mpiexec() -> str:
    """The mpiexec of this Python's environment (the MPI mpi4py was built for)."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.path.exists(beside):
        return beside
    found = shutil.which("mpiexec")
    if not found:
        sys.exit("run_mpi: no mpiexec found (install the 'mpich' wheel: bash launch/setup.sh)")
    return found


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--np", type=int, default=2, help="number of MPI processes")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before the job is killed")
    p.add_argument("--log-dir", help="where rank<r>.log files go (default: a temp dir)")
    p.add_argument("--tests", default=os.path.join("tests", "mpi"), help="test path")
    p.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = p.parse_args(argv)

    log_dir = args.log_dir or tempfile.mkdtemp(prefix="dtnn-mpi-logs-")
    os.makedirs(log_dir, exist_ok=True)
    for name in os.listdir(log_dir):
        if name.startswith("rank") and name.endswith((".log", ".rc")):
            os.remove(os.path.join(log_dir, name))
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # one BestOf decision cache shared by the ranks, never the user's (tests/conftest.py)
    if not env.get("DTNN_TUNE_CACHE"):
        env["DTNN_TUNE_CACHE"] = os.path.join(log_dir, "tune-cache")
    cmd = [find_mpiexec(), "-n", str(args.np), sys.executable, WRAPPER, log_dir,
           "--with-mpi", args.tests, "-p", "no:cacheprovider", "-q", "-rs", *args.pytest_args]
    print(f"run_mpi: {' '.join(cmd)}  (other ranks' logs: {log_dir})", flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    timed_out = False
    try:
        status = proc.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        status = proc.returncode
    except KeyboardInterrupt:
        _kill_group(proc)
        raise
    elapsed = time.monotonic() - start

    failed = []
    for r in range(args.np):
        rc_file = os.path.join(log_dir, f"rank{r}.rc")
        try:
            with open(rc_file) as fh:
                rc = int(fh.read().strip() or "1")
        except (OSError, ValueError):
            rc = None  # crashed or killed before pytest returned
        if rc != 0:
            failed.append((r, rc))
    ok = status == 0 and not failed and not timed_out
    if timed_out:
        print(f"run_mpi: TIMEOUT after {args.timeout:.0f}s: killed the job", flush=True)
    for r, rc in failed:
        why = "no exit code (crashed or killed)" if rc is None else f"pytest exit code {rc}"
        print(f"run_mpi: rank {r} failed: {why}")
        if r > 0:
            log = os.path.join(log_dir, f"rank{r}.log")
            print(f"----- {log} -----")
            try:
                with open(log, errors="replace") as fh:
                    sys.stdout.write(fh.read()[-20000:])
            except OSError:
                print("(no log)")
            print(f"----- end of rank {r} -----", flush=True)
    print(f"run_mpi: {args.np} processes, {'OK' if ok else 'FAILED'} "
          f"(mpiexec status {status}, {elapsed:.1f}s)", flush=True)
    return 0 if ok else 1


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


if __name__ == "__main__":
    sys.exit(main())
