"""The fault matrix: run a small ``dtnn train`` job under mpiexec, plant one fault, and
record how the job ends.  Used by ``tests/parallel/test_fault_matrix.py`` and by
``benchmarks/bench_faults.py`` (which writes ``benchmarks/results/faults.md``).

Every job is bounded: mpiexec runs in its own session and is killed (with every rank
the job started, stopped ones included) if it outlives ``timeout``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
#: launcher variables of an enclosing job must not leak into the jobs we start
_LAUNCHER_PREFIXES = ("PMI_", "PMIX_", "OMPI_", "MPI_LOCAL", "HYDRA_", "MV2_", "SLURM_",
                      "DTNN_MPI")
DRIVER = os.path.join(HERE, "fault_driver.py")

#: a tiny job: 640 samples (5 steps per epoch on 2 ranks, 2 on 4), a checkpoint every
#: epoch, 200 epochs (the fault always comes first)
TRAIN_ARGS = ["--set", "data.source=synthetic",
              "--set", "data.options={shape = [1, 8, 8], classes = 4, n_train = 640, "
                       "n_test = 64}",
              "--set", "model.options.filters=4", "--set", "model.options.hidden=16",
              "--set", "train.epochs=200", "--set", "output.progress=false",
              "--set", "optim.lr=0.02"]
FAULT_STEP = 25  # several epochs in: checkpoints exist


@dataclass
class Case:
    name: str
    fault: str = "none"            # what the driver plants (see fault_driver.py)
    target: int = 1                # rank of the fault
    signal: Optional[str] = None   # sent from outside: KILL, TERM, STOP, INT-mpiexec
    marker: str = "ready"          # signal once STATE/<marker>-<target> exists
    expect_status: Optional[int] = None
    expect_text: str = ""          # must appear in the job's output


CASES = [
    Case("SIGKILL on rank 1", signal="KILL"),
    Case("exception on rank 1", fault="raise", expect_status=1,
         expect_text="planted failure"),
    Case("sys.exit(0) on rank 1", fault="exit0", expect_status=1,
         expect_text="left the job early"),
    Case("SIGINT once to mpiexec (Ctrl-C)", signal="INT-mpiexec", expect_status=130,
         expect_text="interrupted by SIGINT"),
    Case("SIGTERM on rank 1", signal="TERM", expect_status=143,
         expect_text="interrupted by SIGTERM"),
    Case("SIGSTOP on rank 0", target=0, signal="STOP", expect_status=124,
         expect_text="did not arrive: rank 0 (no answer"),
    Case("SIGSTOP on rank 1", signal="STOP", expect_status=124,
         expect_text="did not arrive: rank 1 (no answer"),
    Case("SIGKILL on rank 0 during a checkpoint save", fault="hold-save", target=0,
         signal="KILL", marker="saving"),
]


@dataclass
class Result:
    case: Case
    processes: int
    command: List[str]
    status: Optional[int] = None
    seconds_to_end: float = float("nan")  # fault (or signal) -> mpiexec exited
    output: str = ""
    left: List[int] = field(default_factory=list)   # live processes after the end
    checkpoint_epoch: Optional[int] = None
    checkpoint_error: str = ""
    timed_out: bool = False


def mpiexec() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else "mpiexec"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _read_pids(state: str, n: int) -> List[int]:
    pids = []
    for r in range(n):
        try:
            with open(os.path.join(state, f"pid-{r}")) as fh:
                pids.append(int(fh.read()))
        except (OSError, ValueError):
            pass
    return pids


def run_case(case: Case, workdir: str, processes: int = 2, stall_timeout: float = 3.0,
             timeout: float = 90.0) -> Result:
    state = os.path.join(workdir, "state")
    run_dir = os.path.join(workdir, "run")
    os.makedirs(state, exist_ok=True)
    cmd = [mpiexec(), "-n", str(processes), sys.executable, DRIVER, state, case.fault,
           str(case.target), str(FAULT_STEP), "--", *TRAIN_ARGS, "--run-dir", run_dir,
           "--set", f"dist.stall_timeout={stall_timeout}"]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_LAUNCHER_PREFIXES) and k != "DTNN_STALL_TIMEOUT"}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    result = Result(case, processes, cmd)
    log_path = os.path.join(workdir, "output.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        t_fault = None
        deadline = time.monotonic() + timeout
        try:
            marker = os.path.join(state, f"{case.marker}-{case.target}")
            fault_file = os.path.join(state, f"fault-{case.target}")
            while time.monotonic() < deadline and proc.poll() is None:
                if case.signal is None and os.path.exists(fault_file):
                    t_fault = os.path.getmtime(fault_file)  # the driver's own clock
                    break
                if case.signal is not None and os.path.exists(marker):
                    t_fault = time.time()
                    if case.signal == "INT-mpiexec":
                        os.kill(proc.pid, signal.SIGINT)
                    else:
                        with open(marker) as fh:
                            os.kill(int(fh.read()), getattr(signal, "SIG" + case.signal))
                    break
                time.sleep(0.02)
            result.status = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            t_end = time.time()
            if t_fault is None and os.path.exists(os.path.join(state, f"fault-{case.target}")):
                t_fault = os.path.getmtime(os.path.join(state, f"fault-{case.target}"))
            if t_fault is not None:
                result.seconds_to_end = t_end - t_fault
        except subprocess.TimeoutExpired:
            result.timed_out = True
        finally:
            pids = _read_pids(state, processes)
            if proc.poll() is None or result.timed_out:
                _kill_everything(proc, pids)
    for _ in range(50):  # the launcher reaps its ranks asynchronously
        result.left = [p for p in pids if _alive(p)]
        if not result.left:
            break
        time.sleep(0.1)
    if result.left:
        _kill_everything(None, result.left)
    with open(log_path, errors="replace") as fh:
        result.output = fh.read()
    _check_checkpoint(result, os.path.join(run_dir, "checkpoint.h5"))
    return result


def _kill_everything(proc, pids) -> None:
    if proc is not None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc is not None:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass


def _check_checkpoint(result: Result, path: str) -> None:
    from dtnn.errors import DataError
    from dtnn.io.checkpoint import load_checkpoint
    try:
        result.checkpoint_epoch = load_checkpoint(path).epoch
    except DataError as exc:
        result.checkpoint_error = str(exc)


def problems(result: Result) -> List[str]:
    """What is wrong with how the job ended ([] = everything the matrix asks for)."""
    out = []
    case = result.case
    if result.timed_out:
        out.append("the job did not end (timeout)")
    if result.status in (None, 0):
        out.append(f"exit status {result.status}, expected non-zero")
    if case.expect_status is not None and result.status != case.expect_status:
        out.append(f"exit status {result.status}, expected {case.expect_status}")
    if case.expect_text and case.expect_text not in result.output:
        out.append(f"output lacks {case.expect_text!r}")
    if result.left:
        out.append(f"processes left running: {result.left}")
    if result.checkpoint_epoch is None or result.checkpoint_epoch < 1:
        out.append(f"no loadable checkpoint ({result.checkpoint_error})")
    if "Traceback" in result.output and case.fault != "raise":
        out.append("a traceback was printed")
    return out
