"""The watchdog of a multi-process job: stalls, interrupts and ranks that leave early.

A rank blocked inside an MPI call never returns to Python, so nothing that runs in the
main thread can notice that a peer stopped (SIGSTOP, a dead NFS mount, a deadlock) or
that the user pressed Ctrl-C.  Each rank therefore runs one daemon thread (this
module, in the spirit of Horovod's stall inspector and NCCL's watchdog) that:

* **times every guarded wait.**  ``guard(what, step)`` marks the main thread as
  blocked in a collective (the reducer's end-of-step wait, the context's small
  collectives).  Once one wait lasts longer than ``timeout`` seconds, the thread asks
  every other rank where it is, over a private communicator, and ends the job with a
  one-line error naming the ranks that did not arrive: those that do not answer within
  a few seconds (stopped, dead, or blocked in C holding the GIL), those still busy
  computing, and those waiting in a different collective.  Only the lowest-ranked
  waiting rank reports; the others defer to it.  ``timeout = 0`` turns this off.
* **turns SIGINT/SIGTERM into the end of the whole job.**  The C-level signal handler
  writes to a pipe (``signal.set_wakeup_fd``) even while the main thread is blocked in
  MPI; the thread reads it and aborts the job (status 128 + signal number).  Without
  this, one Ctrl-C left some ranks in ``MPI_Finalize`` and the others in ``Waitall``.
* **answers the same questions from peers** (this rank's position: the collective it
  waits in, or how long it has been computing since the last one).
* **checks the exit** (``atexit``): a rank leaving the program waits at a barrier on a
  private communicator; if a peer is meanwhile blocked in a collective of the job,
  this rank left early (an early ``return``, ``sys.exit(0)``) and the job is aborted at
  once instead of hanging in ``MPI_Finalize``.

The main thread's cost is two attribute stores per guarded wait.  The thread wakes a
few times a second; MPI is used from it only with ``MPI_THREAD_MULTIPLE`` (mpi4py's
default); with less, stalls still end the job, without naming ranks.
"""
from __future__ import annotations

import atexit
import os
import select
import signal
import threading
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

from dtnn.parallel.failure import abort_job

QUERY_TAG, REPLY_TAG = 7301, 7302
_LABEL_WORDS = 8                       # 64 bytes of label in every reply
_REPLY_LEN = 5 + _LABEL_WORDS          # rank, seq, waiting, waited_ms, busy_ms, label
END_OF_JOB = "end of job"
#: exit status when a stall ends the job (like timeout(1))
STALL_STATUS = 124

_SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class _Guard:
    """``with watchdog.guard(what, step):`` around a blocking wait (no-op when the
    watchdog is off or the wait is nested in another guarded one)."""
    __slots__ = ("wd", "what", "step", "outer")

    def __init__(self, wd: Optional["Watchdog"], what: str, step: Optional[int]):
        self.wd, self.what, self.step, self.outer = wd, what, step, False

    def __enter__(self):
        wd = self.wd
        if wd is not None and wd._state[3] is None:
            self.outer = True
            wd._state = (wd._state[0] + 1, self.what, self.step, time.monotonic(),
                         wd._state[4])
        return self

    def __exit__(self, *exc):
        if self.outer:
            wd = self.wd
            wd._state = (wd._state[0], None, None, None, time.monotonic())
        return False


class Watchdog:
    """One per process; see the module docstring.  Create with ``start()``."""

    def __init__(self, comm, timeout: float):
        from mpi4py import MPI
        self.MPI = MPI
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.ctrl = comm.Dup()      # queries and replies
        self.exit_comm = comm.Dup()  # the exit barrier
        self.timeout = float(timeout)
        self.threaded_mpi = MPI.Query_thread() >= MPI.THREAD_MULTIPLE
        #: (guarded waits entered, what, step, waiting since | None, last wait ended)
        self._state: Tuple = (0, None, None, None, time.monotonic())
        self._stop = threading.Event()
        self._sends: List = []               # (request, buffer) of replies in flight
        self._pending_recvs: List = []       # our queries' receive requests
        self._reported = False
        self._signal_r, self.signal_w = os.pipe()
        os.set_blocking(self.signal_w, False)
        self._thread = threading.Thread(target=self._run, name="dtnn-watchdog", daemon=True)

    # --- configuration --------------------------------------------------------------------
    @property
    def poll(self) -> float:
        return 0.25 if self.timeout <= 0 else min(0.25, max(0.02, self.timeout / 20))

    @property
    def answer_window(self) -> float:
        """How long a query waits for answers (a busy rank needs the GIL to answer)."""
        return 3.0 if self.timeout <= 0 else min(3.0, max(1.0, self.timeout / 2))

    def guard(self, what: str, step: Optional[int] = None) -> _Guard:
        return _Guard(self, what, step)

    # --- the thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._signal_r], [], [], self.poll)
            except (OSError, ValueError):
                return
            if ready:
                self._read_signals()
            if self._stop.is_set():
                return
            if self.threaded_mpi:
                self._answer_queries()
            self._check()

    def _read_signals(self) -> None:
        try:
            data = os.read(self._signal_r, 64)
        except OSError:
            return
        for signum in data:
            if signum in _SIGNAL_NAMES:
                if self.rank > 0:  # Ctrl-C reaches every rank: let rank 0 say it once
                    time.sleep(0.5)
                abort_job(f"dtnn: interrupted by {_SIGNAL_NAMES[signum]}: ending the job "
                          "on every rank (the last complete checkpoint is kept)",
                          128 + signum)

    def _check(self) -> None:
        seq, what, step, since, _ = self._state
        if since is None or self._reported:
            return
        waited = time.monotonic() - since
        if what == END_OF_JOB and waited > 1.0 and self.threaded_mpi:
            self._check_exit(seq, waited)
        elif self.timeout > 0 and waited > self.timeout:
            self._reported = True
            self._report_stall(seq, what, step, waited)

    # --- asking peers -------------------------------------------------------------------
    def _answer_queries(self) -> None:
        MPI = self.MPI
        status = MPI.Status()
        query = np.zeros(2, np.int64)
        while self.ctrl.Iprobe(source=MPI.ANY_SOURCE, tag=QUERY_TAG, status=status):
            src = status.Get_source()
            self.ctrl.Recv(query, source=src, tag=QUERY_TAG)
            reply = self._position()
            self._sends.append((self.ctrl.Isend(reply, dest=src, tag=REPLY_TAG), reply))
        self._sends = [(r, b) for r, b in self._sends if not r.Test()]

    def _position(self) -> np.ndarray:
        seq, what, step, since, last = self._state
        now = time.monotonic()
        out = np.zeros(_REPLY_LEN, np.int64)
        out[:5] = (self.rank, seq, since is not None,
                   int(1000 * (now - since)) if since is not None else 0,
                   int(1000 * (now - last)) if since is None else 0)
        label = _label(what, step).encode()[:8 * _LABEL_WORDS]
        raw = np.zeros(8 * _LABEL_WORDS, np.uint8)
        raw[:len(label)] = np.frombuffer(label, np.uint8)
        out[5:] = raw.view(np.int64)
        return out

    def ask_peers(self) -> Dict[int, dict]:
        """Every other rank's position (ranks that do not answer in time are absent)."""
        peers = [r for r in range(self.size) if r != self.rank]
        query = np.array([self.rank, self._state[0]], np.int64)
        for r in peers:
            self._sends.append((self.ctrl.Isend(query, dest=r, tag=QUERY_TAG), query))
        bufs = {r: np.zeros(_REPLY_LEN, np.int64) for r in peers}
        reqs = {r: self.ctrl.Irecv(bufs[r], source=r, tag=REPLY_TAG) for r in peers}
        answers: Dict[int, dict] = {}
        deadline = time.monotonic() + self.answer_window
        while len(answers) < len(peers) and time.monotonic() < deadline:
            self._answer_queries()  # peers may be asking us at the same time
            for r, req in reqs.items():
                if r not in answers and req.Test():
                    answers[r] = _decode(bufs[r])
            time.sleep(0.01)
        self._pending_recvs += [req for r, req in reqs.items() if r not in answers]
        return answers

    # --- verdicts -------------------------------------------------------------------------
    def _report_stall(self, seq: int, what: str, step: Optional[int], waited: float) -> None:
        where = f"'{_label(what, step)}'"
        if not self.threaded_mpi:
            abort_job(f"dtnn: error: stall: rank {self.rank} waited {waited:.0f} s in {where}"
                      f" (dist.stall_timeout = {self.timeout:g} s); this MPI has no thread "
                      "support to ask which rank did not arrive", STALL_STATUS)
            return
        answers = self.ask_peers()
        here = _label(what, step)
        waiting_here = [r for r, a in answers.items() if a["waiting"] and a["label"] == here]
        if any(r < self.rank and answers[r]["waited"] > self.timeout for r in waiting_here):
            # a lower rank waits in the same collective and reports it: leave the one
            # line to it, end the job ourselves only if it does not
            time.sleep(2 * self.answer_window)
        missing = []
        for r in range(self.size):
            if r == self.rank or r in waiting_here:
                continue
            a = answers.get(r)
            if a is None:
                missing.append(f"rank {r} (no answer within {self.answer_window:g} s: "
                               "stopped, dead, or blocked in C)")
            elif a["waiting"]:
                missing.append(f"rank {r} (waiting in '{a['label']}' instead)")
            else:
                missing.append(f"rank {r} (computing for {a['busy']:.0f} s since its last "
                               "collective)")
        abort_job(f"dtnn: error: stall: rank {self.rank} waited {waited:.0f} s in {where}; "
                  f"did not arrive: {'; '.join(missing) or 'none (all are waiting)'} "
                  f"(dist.stall_timeout = {self.timeout:g} s)", STALL_STATUS)

    def _check_exit(self, seq: int, waited: float) -> None:
        """At the exit barrier: a peer blocked in one of the job's collectives waits for
        this rank, which has left: end the job now."""
        if getattr(self, "_exit_asked", 0.0) > time.monotonic() - 1.0:
            return
        self._exit_asked = time.monotonic()
        answers = self.ask_peers()
        stuck = sorted(r for r, a in answers.items()
                       if a["waiting"] and a["label"] != END_OF_JOB)
        if stuck:
            self._reported = True
            where = answers[stuck[0]]["label"]
            abort_job(f"dtnn: error: rank {self.rank} left the job early (its program ended) "
                      f"while rank(s) {', '.join(map(str, stuck))} still wait for it in "
                      f"'{where}'", 1)
        elif self.timeout > 0 and waited > self.timeout:
            self._reported = True
            self._report_stall(seq, END_OF_JOB, None, waited)

    # --- life cycle -----------------------------------------------------------------------
    def exit_barrier(self) -> None:
        """Wait until every rank reaches the end of the program (see module docstring)."""
        req = self.exit_comm.Ibarrier()
        pause = 1e-4
        with self.guard(END_OF_JOB):
            while not req.Test():
                time.sleep(pause)
                pause = min(pause * 2, 0.01)

    def stop(self) -> None:
        self._stop.set()
        try:
            os.write(self.signal_w, b"\0")
        except OSError:
            pass
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        for req in self._pending_recvs:
            try:
                req.Cancel()
                req.Wait()
            except Exception:  # pragma: no cover - best effort before MPI_Finalize
                pass
        self._pending_recvs = []


def _label(what: Optional[str], step: Optional[int]) -> str:
    if what is None:
        return ""
    return f"{what} (step {step})" if step is not None else what


def _decode(buf: np.ndarray) -> dict:
    label = buf[5:].copy().view(np.uint8).tobytes().rstrip(b"\0").decode("utf-8", "replace")
    return {"rank": int(buf[0]), "seq": int(buf[1]), "waiting": bool(buf[2]),
            "waited": buf[3] / 1000.0, "busy": buf[4] / 1000.0, "label": label}


# --- the process's watchdog -------------------------------------------------------------------
_current: Optional[Watchdog] = None
_OFF = _Guard(None, "", None)


def current() -> Optional[Watchdog]:
    return _current


def guard(what: str, step: Optional[int] = None) -> _Guard:
    """Context manager around a blocking collective; free when no watchdog runs."""
    wd = _current
    return _OFF if wd is None else _Guard(wd, what, step)


def start(comm, timeout: float) -> Watchdog:
    """Start (or re-time) this process's watchdog.  Collective over ``comm``: every
    rank uses rank 0's ``timeout`` (seconds, 0 = no stall detection)."""
    global _current
    timeout = float(comm.bcast(float(timeout or 0.0), root=0))
    if _current is not None:
        _current.timeout = timeout
        return _current
    wd = Watchdog(comm, timeout)
    wd._thread.start()
    _current = wd
    atexit.register(_at_exit)
    return wd


def _at_exit() -> None:
    global _current
    wd = _current
    if wd is None:
        return
    try:
        if wd.MPI.Is_initialized() and not wd.MPI.Is_finalized():
            wd.exit_barrier()
    finally:
        wd.stop()
        _current = None
