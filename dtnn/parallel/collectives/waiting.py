"""How the exchange waits for its collectives: :func:`wait`, the one place it blocks.

MPICH makes progress only inside MPI calls, so waiting means testing the operations
in flight in rounds until they are done.  What a rank does *between* rounds decides
whether it takes the CPU from a rank that shares its core (4 ranks on 2 cores on the
simulated cluster; any node with more ranks than cores).

The default, ``sleep:100``, yields once, then sleeps 20, 40, 80, 100, 100, ...
microseconds between rounds (the thread's timer slack set to 10 us, so a short sleep
is not rounded up to the default 50 us).  A sleeping rank is off the run queue, so a
neighbour that is still computing keeps the whole core; the cost is up to 100 us
before a rank notices that its message arrived.

It replaced a ``sched_yield`` loop (``yield``).  On Linux's EEVDF scheduler (6.6 and
later) ``sched_yield`` does not hand the core over: it only pushes the caller's
deadline back, and the caller runs on while the other task is not "eligible" (has
had more than its share lately).  A rank computing next to a waiting one is exactly
that task, so the waiter kept its fair half of the core spinning.  Measured on the
simulated cluster (4 hosts at 100 Mbit/s, random-k time to 89 %, per-step traces on
every rank, benchmarks/results/scaling.md "Slow stretches"): with ``yield`` whole
stretches between evaluations ran at 14-26 ms per step instead of 9.4-10.4, every
rank then burning 9.9 instead of 4.7 ms of CPU per step with no idle and no steal
time; with sleeps no such stretch appeared (runs 19.7-21.6 s against 24.3-26.4 s).

The policies are a table (``REGISTRY``, filled by :func:`register` at the end of this
module: a factory ``make(cap) -> pause(live_ops)`` and an optional scope entered around
the whole wait).  Other policies stay selectable for experiments, through ``DTNN_WAIT``
in every rank's environment or :func:`set_wait_policy`: ``yield``; ``sleep:<us>`` (another
cap); ``idle`` (the ``yield`` loop with the thread in SCHED_IDLE while it waits:
measured slower, 28 s, and it starves under any other load); ``mpi`` (MPICH's own
``MPI_Waitall``, which also spins); ``poll:<us>`` (``select`` on the process's
sockets, so a TCP message wakes the rank at once, else ``<us>``).
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, ContextManager, Dict, List, Optional, Sequence, Tuple

from dtnn.errors import ConfigError

DEFAULT = "sleep:100"


@dataclass(frozen=True)
class Policy:
    """One way to pass the time between rounds of tests.  ``make(cap)`` returns a fresh
    ``pause(live_ops)`` for one wait (a wait's backoff state lives in it); ``scope()``
    is entered around the whole wait (``idle``: the thread's scheduling class)."""

    name: str
    make: Callable[[float], Callable[[List], None]]
    takes_cap: bool = False
    scope: Callable[[], ContextManager] = nullcontext


#: the policies by name, in the order the error message lists them
REGISTRY: Dict[str, Policy] = {}


def register(name: str, *, takes_cap: bool = False,
             scope: Callable[[], ContextManager] = nullcontext):
    """Decorator: ``make(cap) -> pause`` becomes the policy ``name``."""
    def deco(make):
        REGISTRY[name] = Policy(name, make, takes_cap, scope)
        return make
    return deco


def _expected() -> str:
    plain = [n for n, p in REGISTRY.items() if not p.takes_cap]
    capped = [f"{n}[:<us>]" for n, p in REGISTRY.items() if p.takes_cap]
    return ", ".join(plain + capped)


def parse_policy(spec: str) -> Tuple[str, float]:
    """``name[:microseconds]`` -> (name, cap in seconds); ConfigError if malformed."""
    name, _, arg = str(spec).strip().partition(":")
    policy = REGISTRY.get(name)
    if policy is None or (arg and not policy.takes_cap):
        raise ConfigError(f"DTNN_WAIT={spec!r}: expected one of {_expected()}")
    cap = 100e-6
    if arg:
        try:
            cap = float(arg) * 1e-6
        except ValueError:
            cap = -1.0
        if not 0 < cap <= 0.1:
            raise ConfigError(f"DTNN_WAIT={spec!r}: the sleep cap must be a number of "
                              "microseconds in (0, 100000]")
    return name, cap


def set_wait_policy(spec: str) -> None:
    """Choose how :func:`wait` passes the time (see the module docstring)."""
    global _policy
    _policy = parse_policy(spec)


def wait_policy() -> str:
    name, cap = _policy
    return f"{name}:{cap * 1e6:g}" if REGISTRY[name].takes_cap else name


def wait(ops: Sequence, on_idle: Optional[Callable[[float], None]] = None) -> None:
    """Block until every op is done.  Each round tests the unfinished ops (one shared
    ``MPI_Testsome``, ``base.advance``, which advances the ops whose requests completed);
    between rounds the policy's pause.  ``on_idle(seconds_waited)`` is
    called between rounds (a stall detector can raise from it)."""
    from dtnn.parallel.collectives.base import advance   # (base imports this module)
    t0 = time.perf_counter()
    live = advance(ops)
    if not live:
        return
    name, cap = _policy
    policy = REGISTRY[name]
    with policy.scope():
        pause = policy.make(cap)   # a fresh backoff for this wait
        while live:
            pause(live)
            live = advance(live)
            if on_idle is not None and live:
                on_idle(time.perf_counter() - t0)


# --- the policies ----------------------------------------------------------------------
def _yield_pause(cap: float = 0.0):
    return lambda live: os.sched_yield()


def _sleep_pause(cap: float):
    _small_timer_slack()
    state = [0.0]

    def pause(live):
        nap = state[0]
        if nap:
            time.sleep(nap)
        else:
            os.sched_yield()
        state[0] = min(cap, max(20e-6, 2 * nap))
    return pause


def _mpi_pause(live) -> None:
    from mpi4py import MPI
    reqs = [r for op in live for r in op.pending()]
    if reqs:
        MPI.Request.Waitall(reqs)


_SLACK_SET = set()


def _small_timer_slack() -> None:
    """10 us of timer slack for the calling thread (once per thread)."""
    tid = threading.get_ident()
    if tid in _SLACK_SET:
        return
    _SLACK_SET.add(tid)
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(29, 10000, 0, 0, 0)  # PR_SET_TIMERSLACK
    except (OSError, AttributeError):
        pass


# --- idle: SCHED_IDLE while waiting --------------------------------------------------
_IDLE_OK: Optional[bool] = None


def idle_class_available() -> bool:
    """Whether a thread may move to SCHED_IDLE *and back*: tried once, in a throwaway
    thread, so a kernel or limit that refuses the way back strands nothing."""
    global _IDLE_OK
    if _IDLE_OK is None:
        result = [False]

        def probe():
            try:
                if os.sched_getscheduler(0) == os.SCHED_OTHER:
                    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
                    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
                    result[0] = True
            except (AttributeError, OSError):
                pass

        t = threading.Thread(target=probe, name="dtnn-sched-probe")
        t.start()
        t.join()
        _IDLE_OK = result[0]
    return _IDLE_OK


class _IdleClass:
    """The calling thread in SCHED_IDLE inside the ``with`` (if allowed and it is in
    SCHED_OTHER now), back to SCHED_OTHER after."""

    def __enter__(self):
        self.moved = False
        if idle_class_available() and os.sched_getscheduler(0) == os.SCHED_OTHER:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            self.moved = True
        return self

    def __exit__(self, *exc):
        if self.moved:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        return False


# --- poll: select() on the process's sockets ------------------------------------------
class _Sockets:
    """This process's sockets (MPI's TCP connections among them), listed from
    /proc/self/fd and refreshed every ``REFRESH`` waits (connections open lazily)."""

    REFRESH = 200

    def __init__(self):
        self.fds: List[int] = []
        self.age = self.REFRESH

    def get(self) -> List[int]:
        self.age += 1
        if self.age >= self.REFRESH:
            self.age = 0
            fds = []
            for name in os.listdir("/proc/self/fd"):
                try:
                    if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                        fds.append(int(name))
                except OSError:
                    pass
            self.fds = [fd for fd in fds if fd < 1024]   # select()'s limit
        return self.fds


_SOCKETS = _Sockets()


def _poll_pause(cap: float):
    return _PollPause(cap)


class _PollPause:
    """Sleep until a socket has data or ``cap`` passes (shared-memory peers, sends
    waiting for room); a socket that stays readable without anything moving makes
    the next pauses plain sleeps."""

    def __init__(self, cap: float):
        _small_timer_slack()
        self.cap = cap
        self.socks = _SOCKETS.get()
        self.fruitless = 0      # wakes by a readable socket in a row that moved nothing
        self.seen: Optional[list] = None
        self.ready = False

    def __call__(self, live) -> None:
        import select
        now = [id(op.pending()) for op in live]
        moved = self.seen is None or now != self.seen
        self.seen = now
        self.fruitless = 0 if (moved or not self.ready) else self.fruitless + 1
        if self.socks and self.fruitless < 2:
            try:
                self.ready = bool(select.select(self.socks, [], [], self.cap)[0])
                return
            except (OSError, ValueError):
                self.socks = []
        time.sleep(self.cap)
        self.fruitless, self.ready = 0, False


# --- the table (in the order the error message lists them) ----------------------------
register("yield")(_yield_pause)
register("idle", scope=_IdleClass)(_yield_pause)
register("mpi")(lambda cap: _mpi_pause)
register("sleep", takes_cap=True)(_sleep_pause)
register("poll", takes_cap=True)(_poll_pause)

#: how this process waits: ``DTNN_WAIT`` (checked at import) or :func:`set_wait_policy`
_policy: Tuple[str, float] = parse_policy(os.environ.get("DTNN_WAIT") or DEFAULT)
