"""Deferred completion of a step's exchange (``dist.defer_update``), the part of
``GradientReducer`` that leaves the buckets in flight after backward and completes each
one when the next forward pass reaches the layers that read it.

``finish_step(defer=True)`` (when ``can_defer()``) returns at once; ``before_group(g)``,
called by the model before group ``g``'s forward, completes, averages and hands to the
optimizer (``on_bucket(lo, hi)``) every pending bucket those layers read, the last posted
(the first layers') first, and otherwise advances the collectives in flight;
``complete_all()`` flushes what is left.  The maths is the synchronous step's: every
parameter is updated with the averaged gradient before it is read.

A mixin: it uses the reducer's buckets, views, scale, executor, options and statistics.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, Optional

import numpy as np

from dtnn.parallel import collectives as C
from dtnn.parallel.watchdog import guard as stall_guard


class DeferredCompletion:
    """The deferred-completion half of ``GradientReducer`` (see the module doc)."""

    def _init_deferred(self, layout, size: int) -> None:
        # buckets left in flight by finish_step(defer=True), bucket index -> op,
        # completed by before_group / complete_all
        self._pending: Dict[int, C.Op] = {}
        self._on_bucket: Optional[Callable[[int, int], None]] = None
        #: seconds waited for each deferred bucket ([lo, hi) of the flat vector), summed
        self._defer_waits: Dict[tuple, float] = {}
        # groups 0..g read the flat range from _need_from[g] on (groups are laid out in
        # reverse order): a forward pass at group g needs every bucket ending past it
        lo, self._need_from = size, []
        for g in range(layout.num_groups):
            a, b = layout.group_range(g)
            if b > a:
                lo = min(lo, a)
            self._need_from.append(lo)

    def can_defer(self) -> bool:
        """Whether ``finish_step(defer=True)`` may leave the buckets in flight: the plain
        (uncompressed) overlap path driven from the hooks, one op per bucket, several
        ranks, no per-step replica check (it reads the updated parameters).  Other paths
        (compression, blocking mode, the exchange thread) finish the step as usual."""
        return (self.mode == "overlap" and not self._cx and not self.executor.threaded
                and not self.options.check_replicas and self.size > 1 and self._in_step)

    @property
    def pending(self) -> bool:
        """Buckets of a deferred step are still in flight or not averaged yet."""
        return bool(self._pending)

    def _finish_deferred(self, on_bucket) -> None:
        t_wait = time.perf_counter()
        self.stats_acc.wait_begins()
        if self._posted != len(self.buckets):
            raise RuntimeError(f"only {self._posted} of {len(self.buckets)} "
                               "buckets were started")
        self.executor.poll()
        if self._bufs:   # the next forward updates the running statistics in place
            C.wait([self._buf_op], self.on_wait_idle)
            self._average_buffers()
        self._pending = dict(enumerate(self._bucket_ops))
        self._on_bucket = on_bucket
        self._deferred_ops = ([self._buf_op] if self._bufs else []) + list(self._bucket_ops)
        self._deferred_t = t_wait
        self._deferred_exposed = time.perf_counter() - t_wait
        self._in_step = False
        self.steps_done += 1

    def before_group(self, g: int) -> None:
        """A forward pass is about to run groups ``.. g``: complete, average and hand to
        ``on_bucket`` every pending bucket they read (the last posted first); otherwise
        advance the collectives in flight (a progress point, ``dist.progress_interval``)."""
        if not self._pending:
            return
        lo = self._need_from[g] if 0 <= g < len(self._need_from) else 0
        needed = [k for k in self._pending if self.buckets[k][1] > lo]
        if needed:
            with stall_guard("gradient exchange", self.steps_done):
                for k in sorted(needed, reverse=True):
                    self._complete(k)
            return
        t = time.perf_counter()
        if t - self._last_poll < self.options.progress_interval:
            self.polls_skipped += 1
            return
        self.polls += 1
        C.poll(list(self._pending.values()))
        self._last_poll = time.perf_counter()
        self.stats_acc.hook(self._last_poll - t)

    def complete_all(self) -> None:
        """Complete every pending bucket of a deferred step (a no-op if none)."""
        if not self._pending:
            return
        with stall_guard("gradient exchange", self.steps_done):
            for k in sorted(self._pending, reverse=True):
                self._complete(k)

    def _complete(self, k: int) -> None:
        t = time.perf_counter()
        op = self._pending.pop(k)
        if not op.progress():
            others = list(self._pending.values())

            def idle(waited: float) -> None:   # the other buckets go on meanwhile
                C.poll(others)
                if self.on_wait_idle is not None:
                    self.on_wait_idle(waited)
            C.wait([op], idle)
        view = self._views[k]
        np.multiply(view, self._scale, out=view)
        waited = time.perf_counter() - t
        self._deferred_exposed += waited
        a, b, _ = self.buckets[k]
        self._defer_waits[(a, b)] = self._defer_waits.get((a, b), 0.0) + waited
        if self._on_bucket is not None:
            self._on_bucket(a, b)
        if not self._pending:
            self._end_deferred()

    def _end_deferred(self) -> None:
        self._on_bucket = None
        t_end = time.perf_counter()
        step = self.stats_acc.end(self._deferred_t, t_end, self._deferred_ops, 0.0,
                                  exposed=self._deferred_exposed)
        self._deferred_ops = []
        self._record_tuning(step)
