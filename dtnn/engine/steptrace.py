"""Per-step trace of the training loop on every rank (a diagnostic, off by default).

``DTNN_STEP_TRACE=<dir>`` in the environment of a ``dtnn train`` job makes every rank
record one row per optimizer step and write ``<dir>/steps_rank<R>.npy`` (and
``threads_rank<R>.json``) when training ends.  A row holds the step's end time
(``time.perf_counter``: CLOCK_MONOTONIC, so the ranks of one machine share it), the
reducer's split of the step (exposed wait, hooks, codec, backward window), the main
thread's CPU time, voluntary / involuntary context switches, its scheduler statistics
(time on a CPU, time runnable but waiting for one, time slices), the CPU it last ran on,
and the machine's steal / idle ticks; ``threads_rank<R>.json`` also holds how long each
end-of-epoch section took (``epoch_end_seconds``: the epoch's statistics, checkpoint
and metrics record, which ``train_seconds`` counts).  With those, a slow stretch of steps can be told
apart: the rank computed longer (CPU time grew), waited on a run queue (another task
had its core), waited for a peer (exposed wait with the CPU given away), or the host
took the virtual CPU (steal).

A trace is never overwritten: a directory that already holds one (``steps_rank*.npy``,
``threads_rank*.json``, or the packed ``steps.npz``) is refused before training starts,
with a one-line error naming the variable (exit status 2): give each run its own
directory.

Reading a row costs a few microseconds: the ``/proc`` files are opened once and re-read
with ``pread``.  ``benchmarks/analyze_step_trace.py`` turns the files into per-stretch
tables.
"""
from __future__ import annotations

import json
import os
import resource
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np

from dtnn.errors import ConfigError
from dtnn.io.atomic import atomic_path, write_text

ENV = "DTNN_STEP_TRACE"

#: the columns of a row (``steps_rank<R>.npy`` is float64, one row per step)
FIELDS = ("t_end", "exposed", "hook", "codec", "backward_window", "thread_cpu",
          "process_cpu", "nvcsw", "nivcsw", "run_ns", "runq_ns", "slices", "cpu",
          "eval_before", "steal0", "steal1", "idle0", "idle1")


#: the files a trace directory holds (written by ``save``, or packed by the analyzer)
TRACE_FILES = ("steps_rank*.npy", "threads_rank*.json", "steps.npz")


def previous_trace(out: Path) -> Optional[Path]:
    """A file of an earlier run's trace in ``out``, if there is one."""
    if not out.is_dir():
        return None
    for pattern in TRACE_FILES:
        for found in sorted(out.glob(pattern)):
            return found
    return None


def check_env() -> Optional[Path]:
    """The trace directory from ``DTNN_STEP_TRACE`` (None if unset), refused with a
    ``ConfigError`` if it is a file or already holds a trace (never overwritten)."""
    where = os.environ.get(ENV)
    if not where:
        return None
    out = Path(where)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{ENV}={where}: not a directory")
    old = previous_trace(out)
    if old is not None:
        raise ConfigError(f"{ENV}={where}: holds a previous run's trace ({old.name}); "
                          "give this run a new directory (traces are never overwritten)")
    return out


def _read_ints(fd: int, size: int = 4096) -> bytes:
    return os.pread(fd, size, 0)


class StepTrace:
    """Rows of per-step measurements for one rank (see the module docstring)."""

    def __init__(self, out: Path, rank: int, reducer=None, capacity: int = 1 << 16):
        self.out, self.rank, self.reducer = Path(out), int(rank), reducer
        self.rows = np.zeros((capacity, len(FIELDS)), np.float64)
        self.n = 0
        self.tid = threading.get_native_id()
        task = f"/proc/self/task/{self.tid}"
        self._sched = self._open(f"{task}/schedstat")
        self._stat = self._open(f"{task}/stat")
        self._pstat = self._open("/proc/stat")
        self._last = self._reducer_sums()
        self._eval_pending = 0.0
        #: seconds of each end-of-epoch section (epoch record, checkpoint, metrics)
        self.epoch_end: list = []

    @staticmethod
    def _open(path: str) -> Optional[int]:
        try:
            return os.open(path, os.O_RDONLY)
        except OSError:
            return None

    @classmethod
    def from_env(cls, rank: int, reducer=None) -> Optional["StepTrace"]:
        where = check_env()
        return cls(where, rank, reducer) if where is not None else None

    def _reducer_sums(self):
        s = getattr(getattr(self.reducer, "stats_acc", None), "s", None)
        if s is None:
            return (0.0, 0.0, 0.0, 0.0)
        return (s["exposed"], s["hook_mpi"], s["codec"], s["backward_window"])

    def note_epoch_end(self, seconds: float) -> None:
        """The end-of-epoch work (statistics, checkpoint) took ``seconds`` on this rank
        (saved in ``threads_rank<R>.json`` as ``epoch_end_seconds``)."""
        self.epoch_end.append(float(seconds))

    def mark_eval(self) -> None:
        """The next row follows an evaluation (a stretch boundary)."""
        self._eval_pending = 1.0

    def record(self) -> None:
        if self.n >= len(self.rows):
            self.rows = np.concatenate([self.rows, np.zeros_like(self.rows)])
        t = time.perf_counter()
        sums = self._reducer_sums()
        ru = resource.getrusage(resource.RUSAGE_THREAD)
        run = runq = slices = cpu = -1.0
        if self._sched is not None:
            run, runq, slices = (float(v) for v in _read_ints(self._sched).split()[:3])
        if self._stat is not None:
            # the command name may hold spaces: fields count from after its ')'
            tail = _read_ints(self._stat).rsplit(b")", 1)[1].split()
            cpu = float(tail[36])   # field 39 of stat = index 36 after the name
        steal = [-1.0, -1.0]
        idle = [-1.0, -1.0]
        if self._pstat is not None:
            lines = _read_ints(self._pstat).split(b"\n")
            for line in lines[1:3]:
                parts = line.split()
                if len(parts) > 8 and parts[0].startswith(b"cpu"):
                    k = int(parts[0][3:])
                    if k < 2:
                        idle[k] = float(parts[4])
                        steal[k] = float(parts[8])
        row = self.rows[self.n]
        row[:] = (t, sums[0] - self._last[0], sums[1] - self._last[1],
                  sums[2] - self._last[2], sums[3] - self._last[3], time.thread_time(),
                  time.process_time(), ru.ru_nvcsw, ru.ru_nivcsw, run, runq, slices, cpu,
                  self._eval_pending, steal[0], steal[1], idle[0], idle[1])
        self._last = sums
        self._eval_pending = 0.0
        self.n += 1

    def threads(self):
        """Every thread of this process: name, CPU time on a CPU and on a run queue."""
        out = []
        for tid in sorted(os.listdir("/proc/self/task"), key=int):
            try:
                with open(f"/proc/self/task/{tid}/comm") as fh:
                    name = fh.read().strip()
                with open(f"/proc/self/task/{tid}/schedstat") as fh:
                    run, runq, slices = (int(v) for v in fh.read().split()[:3])
            except OSError:
                continue
            out.append({"tid": int(tid), "name": name, "main": int(tid) == self.tid,
                        "run_ns": run, "runq_ns": runq, "slices": slices})
        return out

    def save(self) -> None:
        # through the project's atomic writes: a rank killed mid-save leaves no torn file
        with atomic_path(str(self.out / f"steps_rank{self.rank}.npy")) as tmp, \
                open(tmp, "wb") as fh:
            np.save(fh, self.rows[:self.n])
        meta = {"rank": self.rank, "pid": os.getpid(), "fields": FIELDS,
                "threads": self.threads(), "clock_ticks": os.sysconf("SC_CLK_TCK"),
                "epoch_end_seconds": self.epoch_end}
        write_text(str(self.out / f"threads_rank{self.rank}.json"), json.dumps(meta, indent=1))
        for fd in (self._sched, self._stat, self._pstat):
            if fd is not None:
                os.close(fd)
        self._sched = self._stat = self._pstat = None
