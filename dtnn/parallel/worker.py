"""Who runs the exchange: the backward hooks (inline) or a dedicated thread.

``InlineExecutor``: a bucket's exchange starts inside the backward hook that closes it
(compression included), every hook advances the ops in flight, and the final wait
drives what is left (``collectives.wait``).  Communication advances only when
backward reaches a hook.

``ThreadExecutor`` (``dist.comm_thread = true``): the hooks only queue the bucket; a
thread compresses it, starts its collective, advances every op continuously and
decodes, while the backward pass computes the next layers (numpy and dtnn's kernels
release the GIL).  It needs ``MPI_THREAD_MULTIPLE`` (mpi4py asks for it).  While
backward runs the thread tests its ops every ``poll_interval`` seconds and sleeps in
between (blocked on its queue, so a new job wakes it at once; with nothing in flight
it just blocks), so it does not take a core from the computation.  Once the step waits
for it (every job was queued before the drain request) it finishes them with
``C.wait``, the exchange's one wait, under the same policy as the inline path
(``collectives.waiting``, ``DTNN_WAIT``).  It used to spin on ``sched_yield`` there,
which on EEVDF keeps the core from a co-resident rank.  The main thread makes no MPI
call of the exchange's while the thread works.

Both wait in one place, ``drain(on_idle)``: ``on_idle(seconds_waited)`` is called
while waiting (a stall detector may raise from it).
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Callable, List, Optional

from dtnn.parallel import collectives as C
from dtnn.parallel.collectives.base import Op

Job = Callable[[], List[Op]]


class InlineExecutor:
    threaded = False

    def __init__(self):
        self.ops: List[Op] = []

    def begin(self) -> None:
        self.ops = []

    def submit(self, job: Job) -> None:
        self.ops.extend(job())

    def poll(self) -> None:
        C.poll(self.ops)

    def drain(self, on_idle: Optional[Callable[[float], None]] = None) -> List[Op]:
        C.wait(self.ops, on_idle)
        done, self.ops = self.ops, []
        return done

    def close(self) -> None:
        pass


_DRAIN = object()
_STOP = object()


class ThreadExecutor:
    threaded = True

    def __init__(self, poll_interval: float = 2e-4):
        self.poll_interval = float(poll_interval)
        self._q: "queue.Queue" = queue.Queue()
        self._done = threading.Event()
        self._error: Optional[BaseException] = None
        self._finished: List[Op] = []
        self._thread = threading.Thread(target=self._run, name="dtnn-exchange", daemon=True)
        self._thread.start()

    def begin(self) -> None:
        self._done.clear()

    def submit(self, job: Job) -> None:
        self._q.put(job)

    def poll(self) -> None:
        pass

    def _run(self) -> None:
        ops: List[Op] = []
        live = 0
        while True:
            # while ops are in flight, the queue's timeout is the pause between tests
            try:
                item = self._q.get(timeout=self.poll_interval if live else None)
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            try:
                if item is _DRAIN:
                    # the step's jobs were all queued before this request (FIFO): wait
                    # for them as the inline path does
                    C.wait(ops)
                    self._finished, ops, live = ops, [], 0
                    self._done.set()
                    continue
                if item is not None:
                    ops.extend(item())
                live = C.poll(ops)
            except BaseException as exc:  # reported by drain() in the main thread
                self._error = exc
                ops, live = [], 0
                self._done.set()

    def drain(self, on_idle: Optional[Callable[[float], None]] = None) -> List[Op]:
        self._q.put(_DRAIN)
        t0 = time.perf_counter()
        while not self._done.wait(0.05 if on_idle is not None else None):
            on_idle(time.perf_counter() - t0)
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        done, self._finished = self._finished, []
        return done

    def close(self) -> None:
        self._q.put(_STOP)
        self._thread.join(timeout=5)


def make_executor(threaded: bool, poll_interval: float = 2e-4):
    """A thread executor if asked for and MPI allows threads; else inline (warns)."""
    if threaded:
        from mpi4py import MPI
        if MPI.Query_thread() >= MPI.THREAD_MULTIPLE:
            return ThreadExecutor(poll_interval)
        from dtnn.log import get_logger
        get_logger().warning("dist.comm_thread needs MPI_THREAD_MULTIPLE (this MPI gives "
                             f"level {MPI.Query_thread()}): running the exchange inline")
    return InlineExecutor()
