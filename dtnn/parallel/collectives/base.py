"""What every collective algorithm of the gradient exchange shares.

An algorithm (``@ALGORITHMS.register("ring")``) is built once per communicator
(``Topology``) and ``start``\\ s operations.  An operation (``Op``) is a small state
machine over nonblocking MPI calls: ``progress()`` tests what it has in flight and
posts the next step when a step completes (a ring's next hop, a second phase), so a
collective written over point-to-point advances whenever somebody calls it -- the
backward hooks, the exchange thread or the final wait.

Waiting happens in one place, :func:`wait` (``collectives.waiting``): it tests every
unfinished op in rounds, until all are done, and sleeps between rounds, so a rank that
waits leaves the core to a neighbour that computes (with more ranks than cores, a rank
spinning in ``MPI_Waitany`` or in a test loop keeps the neighbour it waits for off the
core: measured 3-8 ms per ring step at 1 Gbit/s; and on Linux's EEVDF scheduler
``sched_yield`` between tests does not help, see that module).  The reducer's stall
detection and its timers wrap this single function.

Ordering.  Every rank starts the same operations in the same order (buckets close
in the same order everywhere), but an op's *later* stages start when its earlier
ones complete, which happens at different moments on different ranks.  So only the
first stage of an op may be an MPI collective (collectives must be started in the
same order on every rank); later stages use point-to-point messages, kept apart by
tags reserved when the op starts (``Topology.tags``, one counter per communicator),
never when the stage starts.
"""
from __future__ import annotations

import time
from typing import Any, Callable, List, Optional, Sequence

import numpy as np

from dtnn.registry import Registry
from dtnn.parallel.collectives.waiting import wait  # noqa: F401  (the one wait)

#: allreduce algorithms (in-place sum of a float32 vector), by name
ALGORITHMS = Registry("allreduce algorithm")

#: tags 0..TAG_SPAN-1 of the exchange communicator are cycled by the operations
TAG_SPAN = 1 << 14


class Op:
    """One collective operation in flight.  Subclasses keep ``self.reqs`` (the MPI
    requests outstanding for the current step) and implement ``_advance`` (called when
    all of them completed: post the next step, or return True when finished)."""

    name = "op"

    def __init__(self):
        self.reqs: List[Any] = []
        self.done = False
        self.started = time.perf_counter()
        self.finished: Optional[float] = None
        #: bytes this rank sent and received in this operation (counted as posted)
        self.sent = 0
        self.received = 0

    def _advance(self) -> bool:
        raise NotImplementedError

    def progress(self) -> bool:
        """Test the requests in flight; advance while steps complete; True when done."""
        if self.done:
            return True
        while True:
            if self.reqs and not _testall(self.reqs):
                return False
            self.reqs = []
            if self._advance():
                self.done = True
                self.finished = time.perf_counter()
                return True
            if not self.reqs:    # a step that posted nothing (purely local): go on
                continue

    def pending(self) -> List[Any]:
        return [] if self.done else self.reqs

    def shared_reqs(self) -> Optional[List[Any]]:
        """The requests a shared test (:func:`advance`: one ``MPI_Testsome`` over every
        op in flight) may complete on this op's behalf; the op is then advanced by
        ``progress()``.  None: the op tests its requests itself (a subclass with its
        own ``progress``, e.g. one that reads the receive statuses, which a shared
        test would consume)."""
        return self.reqs if type(self).progress is Op.progress else None


class DoneOp(Op):
    """An operation with nothing to do (one rank, an empty buffer)."""

    def __init__(self):
        super().__init__()
        self.done = True
        self.finished = self.started


class Algorithm:
    """Base of the registered algorithms: ``start(buf)`` sums ``buf`` (float32, 1-D,
    contiguous) over the communicator in place and returns the ``Op``."""

    name = "base"

    def __init__(self, topo: "Topology"):
        self.topo = topo
        self.comm = topo.comm
        self.size = topo.size
        self.rank = topo.rank

    #: point-to-point only (may start as a later stage of a chained op)
    p2p = True

    def reserve(self) -> Optional[int]:
        """Tag(s) for one future ``start`` (reserve when the chained op starts)."""
        return self.topo.tags(1) if self.p2p else None

    def start(self, buf: np.ndarray, add=None, tag: Optional[int] = None) -> Op:
        """Sum ``buf`` over the communicator in place.  ``add(own, received)``
        replaces ``own += received`` for payloads numpy cannot add (float16 travelling
        as uint16: ``dtnn.parallel.fp16_sum.half_add``); ``tag`` from ``reserve()``."""
        raise NotImplementedError

    def bytes_per_rank(self, nbytes: int) -> float:
        """Bytes one rank sends (== receives) for an allreduce of ``nbytes``."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


class Topology:
    """The communicator of the exchange and its node structure.

    ``node_comm``: ranks on this host (``COMM_TYPE_SHARED``); ``cross_comm``: the ranks
    with the same local rank on every host (local rank l of each node), so that the
    hosts' local ranks can exchange disjoint chunks in parallel.  ``uniform``: every
    host runs the same number of ranks (hierarchical algorithms need it)."""

    def __init__(self, comm, node_comm=None):
        from mpi4py import MPI
        self.comm = comm
        self.size = comm.Get_size()
        self.rank = comm.Get_rank()
        if node_comm is None:
            node_comm = comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.node_comm = node_comm
        self.local_rank = node_comm.Get_rank()
        self.local_size = node_comm.Get_size()
        sizes = comm.allgather((self.local_rank, self.local_size))
        self.nodes = sum(1 for lr, _ in sizes if lr == 0)
        self.uniform = len({ls for _, ls in sizes}) == 1
        self._cross = None
        self._tags = {}

    def tags(self, n: int = 1, comm=None) -> int:
        """Base of ``n`` consecutive tags for one operation on ``comm`` (default: the
        exchange communicator); every rank must ask in the same order."""
        key = id(comm if comm is not None else self.comm)
        tag = self._tags.get(key, 0)
        if tag + n > TAG_SPAN:
            tag = 0
        self._tags[key] = tag + n
        return tag

    @property
    def cross_comm(self):
        """Created on first use (collective over ``comm``)."""
        if self._cross is None:
            self._cross = self.comm.Split(self.local_rank, key=self.rank)
        return self._cross

    @property
    def multi_node(self) -> bool:
        return self.nodes > 1

    def describe(self) -> str:
        return f"{self.size} rank(s) on {self.nodes} node(s) x {self.local_size}"


def chunk_bounds(n: int, parts: int, align: int = 1) -> List[int]:
    """``parts + 1`` boundaries splitting ``n`` elements into near-equal chunks whose
    starts are multiples of ``align`` (the last chunk takes the remainder)."""
    if parts <= 1:
        return [0, n]
    units = (n + align - 1) // align
    base, extra = divmod(units, parts)
    bounds = [0]
    for k in range(parts):
        bounds.append(min(n, bounds[-1] + (base + (1 if k < extra else 0)) * align))
    bounds[-1] = n
    return bounds


_MPI = None
#: False: :func:`advance` tests op by op (``progress`` on each, one ``MPI_Testall`` per
#: op), the way it did before the shared test; the reference the tests compare with
SHARED_TEST = True


def _mpi():
    """mpi4py's MPI module, imported on first use (a serial run never needs it)."""
    global _MPI
    if _MPI is None:
        from mpi4py import MPI
        _MPI = MPI
    return _MPI


def _testall(reqs) -> bool:
    return _mpi().Request.Testall(reqs)


def advance(ops: Sequence[Op]) -> List[Op]:
    """Advance every unfinished op without blocking; returns those still running.

    One ``MPI_Testsome`` over the requests of every op that allows it
    (``Op.shared_reqs``) instead of one ``MPI_Testall`` per op: each MPI test call
    runs MPICH's progress engine (a poll of the network), so a hook with five ops in
    flight polled five times.  Only the ops with a request that completed then run
    their state machine (``progress``: it tests its requests, which are now null or
    still pending, and posts the next step, testing that at once as before).  After
    any op advanced (a hop's codec can take a millisecond) every op is tested again,
    so a message that arrived meanwhile is not left to the next hook, as the per-op
    tests in list order did for the ops after it.  Ops that test themselves
    (``shared_reqs`` None), and ops with nothing outstanding (a purely local step
    next), are progressed directly."""
    if not SHARED_TEST:
        return [op for op in ops if not op.progress()]
    live: List[Op] = [op for op in ops if not op.done]
    if len(live) == 1:   # one op: its own test is the same single MPI call, cheaper
        return [] if live[0].progress() else live
    while live:
        reqs: List[Any] = []
        owners: List[Op] = []
        mine: List[Op] = []
        for op in live:
            rs = op.shared_reqs()
            if not rs or not any(rs):   # its own test, or nothing left to wait for
                mine.append(op)
            else:
                reqs.extend(rs)
                owners.extend([op] * len(rs))
        for op in mine:
            if op.progress():
                live.remove(op)
        if not reqs:
            return live
        hit = _mpi().Request.Testsome(reqs)
        if not hit:
            return live
        last = None
        for i in hit:   # ascending: each op once, in the order of ops
            op = owners[i]
            if op is not last:
                last = op
                if op.progress():
                    live.remove(op)
    return live


def poll(ops: Sequence[Op]) -> int:
    """Advance every op without blocking; returns how many are still running."""
    return len(advance(ops))


class ReqOp(Op):
    """Raw MPI requests as an op (one step)."""

    name = "requests"

    def __init__(self, reqs: List[Any], sent: float = 0, received: float = 0):
        super().__init__()
        self.reqs = list(reqs)
        self.sent, self.received = sent, received

    def _advance(self) -> bool:
        return True


class ChainOp(Op):
    """An op made of stages that are ops themselves: ``_next()`` returns the next
    stage (called when the previous one finished) or None when everything is done.
    Bytes of the stages add up."""

    name = "chain"

    def __init__(self):
        super().__init__()
        self.sub: Optional[Op] = None

    def _next(self) -> Optional[Op]:
        raise NotImplementedError

    def begin(self) -> "ChainOp":
        """Start the first stage (call at the end of the subclass ``__init__``)."""
        self.sub = self._next()
        if self.sub is None:
            self._finish()
        return self

    def _finish(self) -> None:
        self.done = True
        self.finished = time.perf_counter()

    def progress(self) -> bool:
        while not self.done:
            if not self.sub.progress():
                return False
            self.sent += self.sub.sent
            self.received += self.sub.received
            self.sub = self._next()
            if self.sub is None:
                self._finish()
        return True

    def pending(self) -> List[Any]:
        return [] if self.done or self.sub is None else self.sub.pending()

    def shared_reqs(self) -> Optional[List[Any]]:
        return None if self.done or self.sub is None else self.sub.shared_reqs()


#: collectives for compressed payloads, by name (see dtnn.parallel.exchange)
TRANSPORTS = Registry("compressed collective")
