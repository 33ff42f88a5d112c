"""Deferred completion of a step's exchange (``dist.defer_update``), the part of
``GradientReducer`` that leaves the buckets in flight after backward and completes each
one when the next forward pass reaches the layers that read it.

``finish_step(defer=True)`` (when ``can_defer()``) returns at once; ``before_group(g)``,
called by the model before group ``g``'s forward, completes, averages and hands to the
optimizer (``on_bucket(lo, hi)``) every pending bucket those layers read, the last posted
(the first layers') first, and otherwise advances the collectives in flight;
``complete_all()`` flushes what is left.  The maths is the synchronous step's: every
parameter is updated with the averaged gradient before it is read.

Compressed exchanges defer the same way: a bucket's ops (``CompressedExchange.post``)
compress, move and decode the average into the bucket's gradient view themselves, with
per-unit state only (error-feedback residual, RNG stream keyed by step/unit/chunk,
PowerSGD's Q), so completing them later, at whatever poll, gives the same bits.  The
one op that is not per bucket, the allreduce of the small tensors of *all* buckets, is
posted with the last bucket, which is the first one any forward (or flush) completes:
no range is handed to ``on_bucket`` before it arrived.  Only the blocking-rounds
reference (``DTNN_CX_ROUNDS=blocking``: every bucket's extra rounds after all ops) steps
synchronously.

A mixin: it uses the reducer's buckets, views, scale, executor, options and statistics.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional

import numpy as np

from dtnn.parallel import collectives as C
from dtnn.parallel.held import apply_update
from dtnn.parallel.watchdog import guard as stall_guard


class DeferredCompletion:
    """The deferred-completion half of ``GradientReducer`` (see the module doc)."""

    def _init_deferred(self, layout, size: int) -> None:
        # buckets left in flight by finish_step(defer=True), bucket index -> its ops,
        # completed by before_group / complete_all
        self._pending: Dict[int, List[C.Op]] = {}
        self._on_bucket: Optional[Callable[[int, int], None]] = None
        #: seconds waited for each deferred bucket ([lo, hi) of the flat vector), summed,
        #: and the codec (decode) seconds inside those waits
        self._defer_waits: Dict[tuple, float] = {}
        self._defer_codec: Dict[tuple, float] = {}
        #: seconds finish_step(defer=True) itself took, summed: advancing the ops after
        #: backward ("poll", codec excluded)
        self._defer_finish: Dict[str, float] = {}
        self._buf_pending = False
        # groups 0..g read the flat range from _need_from[g] on (groups are laid out in
        # reverse order): a forward pass at group g needs every bucket ending past it
        lo, self._need_from = size, []
        for g in range(layout.num_groups):
            a, b = layout.group_range(g)
            if b > a:
                lo = min(lo, a)
            self._need_from.append(lo)

    def can_defer(self) -> bool:
        """Whether ``finish_step(defer=True)`` may leave the buckets in flight: the
        overlap path driven from the hooks (uncompressed or compressed, except the
        blocking-rounds reference), several ranks, no per-step replica check (it reads
        the updated parameters).  Other paths (blocking mode, the exchange thread) finish
        the step as usual."""
        return (self.mode == "overlap" and not self.executor.threaded
                and not (self._cx and self.exchange.rounds == "blocking")
                and not self.options.check_replicas and self.size > 1 and self._in_step)

    def _codec_now(self) -> float:
        return self.exchange.codec_seconds if self._cx else 0.0

    @property
    def pending(self) -> bool:
        """Buckets of a deferred step are still in flight or not averaged yet."""
        return bool(self._pending)

    def _finish_deferred(self, on_bucket) -> None:
        t_wait = time.perf_counter()
        codec = self._codec_now()
        self.stats_acc.wait_begins()
        if self._posted != len(self.buckets):
            raise RuntimeError(f"only {self._posted} of {len(self.buckets)} "
                               "buckets were started")
        self.executor.poll()
        t_end = time.perf_counter()
        self._pending = dict(enumerate(self._bucket_ops))
        # the BatchNorm buffers' allreduce completes with the last bucket, the first one
        # the next forward (or a flush) completes, before any layer runs: the forward
        # updates the running statistics in place.  (Waited for here, it cost 2-7 ms on
        # some ranks at 4 hosts, its second round queued behind the buckets' payloads.)
        self._buf_pending = bool(self._bufs)
        self._on_bucket = on_bucket
        self._deferred_ops = ([self._buf_op] if self._bufs else []) + [
            op for ops in self._bucket_ops for op in ops]
        self._deferred_t = t_wait
        # codec that ran inside the waits is codec, not exposed communication (as in
        # the synchronous step): counted once, in ``codec``
        self._deferred_codec = self._codec_now() - codec
        self._deferred_exposed = t_end - t_wait - self._deferred_codec
        fin = self._defer_finish
        fin["poll"] = fin.get("poll", 0.0) + t_end - t_wait - self._deferred_codec
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
        last = len(self.buckets) - 1
        # any layer may read the running statistics: they come with the last bucket
        if self._buf_pending and last in self._pending and last not in needed:
            needed.append(last)
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
        codec = self._codec_now()
        C.poll([op for ops in self._pending.values() for op in ops])
        self._last_poll = time.perf_counter()
        self.stats_acc.hook(self._last_poll - t - (self._codec_now() - codec))

    def complete_all(self, update: bool = True) -> None:
        """Complete every pending bucket of a deferred step (a no-op if none);
        ``update=False``: without handing them to ``on_bucket`` (a run that stops on a
        collective decision, e.g. the divergence guard: every rank drops the update,
        but the collectives in flight still complete, alike on every rank)."""
        if not self._pending:
            return
        if not update:
            self._on_bucket = None
        with stall_guard("gradient exchange", self.steps_done):
            for k in sorted(self._pending, reverse=True):
                self._complete(k)

    def _complete(self, k: int) -> None:
        last = len(self.buckets) - 1
        if (self._cx or self._buf_pending) and k != last and last in self._pending:
            # the small tensors' allreduce (posted with the last bucket) writes ranges
            # of every bucket, and the buffers' completes with it: both must be in
            # before any range is updated
            self._complete(last)
        t = time.perf_counter()
        codec = self._codec_now()
        ops = self._pending.pop(k)
        bufs = self._buf_pending and k == len(self.buckets) - 1
        if bufs:
            ops = ops + [self._buf_op]
        if not all([op.progress() for op in ops]):
            others = [op for rest in self._pending.values() for op in rest]

            def idle(waited: float) -> None:   # the other buckets go on meanwhile
                C.poll(others)
                if self.on_wait_idle is not None:
                    self.on_wait_idle(waited)
            C.wait(ops, idle)
        if not self._cx:   # compressed ops decode the average themselves
            view = self._views[k]
            np.multiply(view, self._scale, out=view)
        if bufs:
            self._average_buffers()
            self._buf_pending = False
        waited = time.perf_counter() - t
        in_codec = self._codec_now() - codec
        self._deferred_exposed += waited - in_codec
        self._deferred_codec += in_codec
        a, b, _ = self.buckets[k]
        self._defer_waits[(a, b)] = self._defer_waits.get((a, b), 0.0) + waited
        self._defer_codec[(a, b)] = self._defer_codec.get((a, b), 0.0) + in_codec
        apply_update(self.held, self._on_bucket, a, b)
        if not self._pending:
            self._end_deferred()

    def _end_deferred(self) -> None:
        self._on_bucket = None
        t_end = time.perf_counter()
        step = self.stats_acc.end(self._deferred_t, t_end, self._deferred_ops, 0.0,
                                  exposed=self._deferred_exposed,
                                  in_wait=self._deferred_codec)
        self._deferred_ops = []
        self._record_tuning(step)
