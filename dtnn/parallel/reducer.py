"""Gradient exchange for data parallelism: average ``model.flat_grads`` over all ranks.

Buckets
    Contiguous slices of ``model.flat_grads`` (``dtnn.parallel.buckets``), cut at
    layer boundaries once a bucket holds ``bucket_mb`` MiB, in backward order (the
    flat vector is laid out in reverse layer order); ``bucket_mb = 0``: one bucket
    per layer with parameters.

What it reduces
    A *gradient layout* (``dtnn.parallel.layout``): a dtnn ``Model`` (wrapped in
    ``ModelLayout``; groups = layers) or anything else with a flat float32 gradient
    buffer and per-group ranges, e.g. ``dtnn.torch``'s layout over torch parameters.

Overlap mode (default)
    ``on_grads_ready(i)`` is called by ``Model.backward`` after layer (group) ``i``;
    once every group of the next unposted bucket has reported, the bucket's
    allreduce starts at once (buckets are posted strictly in order, so every rank
    starts the same collectives in the same order; ``post_remaining()`` posts what
    is left: groups that never reported, unused parameters), with the algorithm
    ``dist.algorithm`` names (``dtnn.parallel.collectives``: ``mpi`` = MPI_Iallreduce,
    ``ring``, ``hier``; ``auto`` = by size and topology, ``choose_algorithm``).  Every
    hook also advances the operations in flight (``dist.progress``), and
    ``finish_step()`` waits for the rest -- in one place, ``_wait`` -- and scales the
    whole vector by 1/size once.  With ``dist.comm_thread`` a dedicated thread starts,
    advances and decodes the buckets instead (``dtnn.parallel.worker``).  The wait is
    timed by the watchdog (``dist.stall_timeout``, ``dtnn.parallel.watchdog``).

Blocking mode (reference)
    One allreduce of the whole flat gradient after backward.

Tuning (``dist.tune``; ``auto`` = on when the job spans several nodes)
    ``dtnn.parallel.autotune``: BestOf times whole steps under each algorithm, then
    under each bucket size, and keeps the fastest (every rank decides alike).

BatchNorm running statistics
    Each rank normalises with the statistics of its own shard, so replicas would drift
    apart in their running mean/var.  With ``average_buffers`` (default) the float
    buffers are averaged every step (one small allreduce started in ``start_step``,
    hidden behind backward).

Timing (``stats()``)
    Per step: ``compute`` (everything that is not the exchange), ``exposed`` (time
    blocked in ``finish_step``), ``hook_mpi`` (time inside the exchange's calls from
    the hooks), ``comm`` (first bucket started -> last op seen complete), the bytes
    reduced per rank (``payload_bytes``), what a bandwidth-optimal allreduce sends per
    rank, ``2 (p-1)/p * payload`` (``wire_bytes_estimate``), and what this rank really
    sent and received between nodes (``wire_sent_bytes``/``wire_recv_bytes``, counted
    by the collectives; shared-memory hops of ``hier`` are not counted).

Compression (``options.compress != "none"``)
    Buckets go to ``dtnn.parallel.exchange.CompressedExchange`` (the collective for the
    payload: ``dist.collective``); the first ``compress_warmup_steps`` steps (and
    PowerSGD's ``start_step``) use the plain path.  ``stats()`` adds ``codec_seconds``
    and ``sent_bytes`` (payload bytes this rank contributed per step).
    ``state_dict()``/``load_state_dict()`` carry every rank's compressor state.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from dtnn.errors import UserError
from dtnn.parallel import collectives as C
from dtnn.parallel.collectives.choice import SMALL_BUCKET_BYTES, choose_algorithm
from dtnn.parallel.buckets import (compressed_bucket_bytes, float_buffers, plan_buckets,
                                   replica_digest)
from dtnn.parallel.deferred import DeferredCompletion
from dtnn.parallel.held import apply_update
from dtnn.parallel.layout import as_layout
from dtnn.parallel.options import DistOptions
from dtnn.parallel.reducer_stats import StepStats
from dtnn.parallel.watchdog import guard as stall_guard

MiB = 1 << 20


class ReplicaMismatchError(UserError):
    """check_replicas found replicas whose parameters or buffers differ."""


class GradientReducer(DeferredCompletion):
    """Averages ``model.flat_grads`` over ``comm``; driven by the trainer as

        reducer.start_step()
        model.backward(dy, on_grads_ready=reducer.on_grads_ready)
        reducer.finish_step()
    """

    def __init__(self, comm, model, options: Optional[DistOptions] = None,
                 topology: Optional[C.Topology] = None):
        self.options = options or DistOptions()
        self.topo = topology if topology is not None else C.Topology(comm.Dup())
        self.comm = self.topo.comm
        self.size, self.rank = self.topo.size, self.topo.rank
        self.model = model
        self.layout = layout = as_layout(model)
        self.mode = self.options.mode
        grads = layout.flat_grads
        if not (grads.flags.c_contiguous and grads.dtype == np.float32):
            raise RuntimeError("model.flat_grads must be a contiguous float32 vector")
        self.grads = grads
        self._algos: Dict[str, C.Algorithm] = {}
        self.algorithm = self.options.algorithm
        # set once the tuner picks self.algorithm where the user left it to dtnn ("auto")
        self._tuned_algorithm = False
        self.compressor, self.exchange = None, None
        if self.options.compress not in ("", "none"):
            from dtnn.compress import build_compressor
            self.compressor, use_ef = build_compressor(self.options.compress)
        bucket_mb = self.options.bucket_mb
        if self.compressor is not None and self.compressor.single_bucket:
            bucket_mb = (grads.nbytes + 1) / MiB
        self._plan(bucket_mb)
        if self.compressor is not None:
            from dtnn.parallel.exchange import CompressedExchange
            big = choose_algorithm(grads.nbytes, self.topo, self.algorithm)
            self.exchange = CompressedExchange(
                self.topo, layout, self.buckets, self.compressor, use_ef,
                self.options.min_compress_size, self.options.compress_seed,
                collective=self.options.collective,
                algorithm="ring" if big == "hier" else big, hierarchical=big == "hier")
            self.exchange.fuse_update = bool(self.options.fuse_update)
        self.compress_warmup = max(self.options.compress_warmup_steps,
                                   getattr(self.compressor, "warmup_steps", 0))
        from dtnn.parallel.worker import make_executor
        self.executor = make_executor(self.options.comm_thread)
        from dtnn.parallel.autotune import exchange_tuner
        self.tuner = exchange_tuner(self)
        self._tuning_done = False
        #: called with the seconds waited so far while finish_step waits (stall checks)
        self.on_wait_idle: Optional[Callable[[float], None]] = None
        self._cx = False
        self._bufs = float_buffers(layout) if self.options.average_buffers else []
        self._buf_pack = np.zeros(sum(b.size for b in self._bufs), np.float64)
        self._scale = np.float32(1.0 / self.size)
        self.payload_bytes = int(grads.nbytes + self._buf_pack.nbytes)
        self.steps_done = 0
        self._in_step = False
        self._last_poll = float("-inf")   # perf_counter of the hooks' last advance (progress_interval)
        #: hooks that advanced the collectives / skipped it (``progress_interval``), in all
        self.polls, self.polls_skipped = 0, 0
        self.stats_acc = StepStats(self)
        self._buf_op: Optional[C.Op] = None
        self._init_deferred(layout, grads.size)

    # --- configuration -------------------------------------------------------------------
    def _plan(self, bucket_mb: float) -> None:
        self.bucket_mb = float(bucket_mb)
        layout = self.layout
        # denser payloads (int8, bf16): smaller buckets, a small last one
        nbytes, last = compressed_bucket_bytes(self.compressor, max(1, int(bucket_mb * MiB)))
        self.buckets = plan_buckets(layout, nbytes, last)
        self._views = [self.grads[a:b] for a, b, _ in self.buckets]
        # readiness: bucket k is posted once all its groups reported ready, and only
        # after buckets 0..k-1 (the same collective order on every rank)
        self._bucket_of: Dict[int, int] = {}
        for g in range(layout.num_groups):
            a, b = layout.group_range(g)
            if b > a:
                self._bucket_of[g] = next(k for k, (s, e, _) in enumerate(self.buckets)
                                          if s <= a < e)
        self._group_count = [0] * len(self.buckets)
        for k in self._bucket_of.values():
            self._group_count[k] += 1
        self._missing: List[int] = list(self._group_count)
        self._seen = bytearray(layout.num_groups)
        # each bucket's ops this step (the compressed exchange's last bucket also
        # carries the small tensors' allreduce): what a deferred step completes
        self._bucket_ops: List[List[C.Op]] = [[] for _ in self.buckets]

    def algo(self, name: str) -> C.Algorithm:
        a = self._algos.get(name)
        if a is None:
            a = self._algos[name] = C.build(name, self.topo)
        return a

    def _algo_for(self, nbytes: int) -> C.Algorithm:
        preferred = self.algorithm
        if self._tuned_algorithm and nbytes < SMALL_BUCKET_BYTES:
            # the tuner times whole steps, where the big buckets set the pace: its pick
            # is for them; small ones go by size as with "auto" (MPI's recursive
            # doubling, log2 p rounds, not 2 (p-1) ring hops -- each of which queues
            # behind a big bucket's hop on the same link, which matters most with
            # dist.defer_update, where the next forward waits for the first layers'
            # small bucket first; benchmarks/results/scaling.md, #17)
            preferred = "auto"
        return self.algo(choose_algorithm(nbytes, self.topo, preferred))

    def _apply_tuning(self) -> None:
        algo, bucket_mb = self.tuner.choose()
        if self.exchange is not None:
            self.exchange.set_collective(algo)
            return
        self.algorithm = algo
        self._tuned_algorithm = self.options.algorithm == "auto"
        if bucket_mb != self.bucket_mb:
            self._plan(bucket_mb)

    # --- the three calls per step -----------------------------------------------------
    def start_step(self) -> None:
        if self._in_step:
            raise RuntimeError("start_step() called twice without finish_step()")
        if self._pending:   # backward overwrites the gradients the pending updates read
            self.complete_all()
        self._in_step = True
        if self.tuner is not None and not self._tuning_done:
            # once settled, apply the winners one last time: the last step timed ran
            # the last alternative tried, not necessarily the winner
            settled = self.tuner.settled
            self._apply_tuning()
            self._tuning_done = settled
        self.stats_acc.begin()
        self._posted = 0
        self._missing = list(self._group_count)
        self._seen = bytearray(len(self._seen))
        self._cx = self.exchange is not None and self.steps_done >= self.compress_warmup
        self.executor.begin()
        if self._cx:
            self.exchange.begin(self.steps_done)
        if self._bufs:
            off = 0
            for b in self._bufs:  # forward already updated them: final for this step
                self._buf_pack[off:off + b.size] = b.ravel()
                off += b.size
            self._timed_submit(self._post_buffers)

    def _post_buffers(self) -> List[C.Op]:
        self._buf_op = self.algo("mpi").start(self._buf_pack)
        return [self._buf_op]

    def _timed_submit(self, job) -> None:
        t = time.perf_counter()
        codec = self.exchange.codec_seconds if self._cx else 0.0
        self.executor.submit(job)
        self.executor.poll()
        self._last_poll = time.perf_counter()
        if not self.executor.threaded:
            self.stats_acc.hook(time.perf_counter() - t - (
                self.exchange.codec_seconds - codec if self._cx else 0.0))

    def _post(self, k: int) -> List[C.Op]:
        self.stats_acc.first_post()
        if self._cx:
            self._bucket_ops[k] = ops = self.exchange.post(k)
            return ops
        view = self._views[k]
        self._bucket_ops[k] = ops = [self._algo_for(view.nbytes).start(view)]
        return ops

    def on_grads_ready(self, layer: int) -> None:
        """Group (layer) ``layer``'s gradients are final for this step: post every
        bucket, in order, whose groups are all ready; advance the ones in flight."""
        if self.mode != "overlap":
            return
        k = self._bucket_of.get(layer)
        if k is not None:
            if self._seen[layer]:
                k = None   # reported twice: count once
            else:
                self._seen[layer] = 1
                self._missing[k] -= 1
        if self._posted < len(self.buckets) and self._missing[self._posted] == 0:
            while self._posted < len(self.buckets) and self._missing[self._posted] == 0:
                self._posted += 1
                self._timed_submit(lambda k=self._posted - 1: self._post(k))
        elif self.options.progress and not self.executor.threaded:
            t = time.perf_counter()
            if t - self._last_poll < self.options.progress_interval:
                self.polls_skipped += 1
                return
            self.polls += 1
            codec = self.exchange.codec_seconds if self._cx else 0.0
            self.executor.poll()
            self._last_poll = time.perf_counter()
            self.stats_acc.hook(time.perf_counter() - t - (
                self.exchange.codec_seconds - codec if self._cx else 0.0))

    def post_remaining(self) -> None:
        """Post, in order, every bucket not posted yet, whatever its groups reported:
        gradients nobody produced this step (unused parameters) go as they are.  For
        callers that cannot promise a hook per group (``dtnn.torch``); a no-op in
        blocking mode (``finish_step`` sends everything)."""
        if self.mode != "overlap" or not self._in_step:
            return
        while self._posted < len(self.buckets):
            self._posted += 1
            self._timed_submit(lambda k=self._posted - 1: self._post(k))

    def _wait(self) -> List[C.Op]:
        """The one place the step waits for the exchange (``on_wait_idle`` is called
        while it waits)."""
        return self.executor.drain(self.on_wait_idle)

    def finish_step(self, defer: bool = False,
                    on_bucket: Optional[Callable[[int, int], None]] = None) -> None:
        """Wait for the step's exchange and average the gradients.  With ``defer``
        (and ``can_defer()``), return at once instead, leaving the buckets in flight:
        each is completed and averaged later, when ``before_group`` reaches a group
        that reads it (the next forward pass) or ``complete_all`` is called, and
        ``on_bucket(lo, hi)`` is then called with its range of the flat vector (the
        optimizer's update of those parameters)."""
        if not self._in_step:
            raise RuntimeError("finish_step() without start_step()")
        # every wait of the step's collectives, whatever the algorithm: timed by the
        # watchdog (dist.stall_timeout), which names the ranks that did not arrive
        with stall_guard("gradient exchange", self.steps_done + 1):
            if defer and self.can_defer():
                self._finish_deferred(on_bucket)
            else:
                self._finish_step()
                # dist.fuse_update: held qring payloads go to on_bucket to decode
                apply_update(self.held, on_bucket, 0, int(self.grads.size))

    @property
    def held(self):
        """The held qring payloads (``dist.fuse_update``:
        ``dtnn.parallel.held.HeldDecodes``), None if the exchange is not compressed."""
        return self.exchange.held if self.exchange is not None else None

    def _finish_step(self) -> None:
        t_wait = time.perf_counter()
        self.stats_acc.wait_begins()
        if self.mode == "blocking":
            self.stats_acc.first_post(t_wait)
            if self._cx:
                for k in range(len(self.buckets)):
                    self.executor.submit(lambda k=k: self.exchange.post(k))
            else:
                self.executor.submit(lambda: [self._algo_for(self.grads.nbytes)
                                              .start(self.grads)])
        elif self._posted != len(self.buckets):
            raise RuntimeError(f"only {self._posted} of {len(self.buckets)} "
                               "buckets were started: was backward run with "
                               "on_grads_ready=reducer.on_grads_ready?")
        ops = self._wait()
        decode = 0.0
        if self._cx and self.exchange.rounds == "blocking":
            self.stats_acc.wait_ends()
            decode = self.exchange.finish_rounds()
        if self.size > 1 and not self._cx:
            np.multiply(self.grads, self._scale, out=self.grads)
        if self._bufs:
            self._average_buffers()
        t_end = time.perf_counter()
        self._in_step = False
        self.steps_done += 1
        self._record_tuning(self.stats_acc.end(t_wait, t_end, ops, decode))
        if self.options.check_replicas:
            self.check_replicas()

    def _average_buffers(self) -> None:
        """The float buffers' (BatchNorm running statistics) allreduced sum, averaged and
        copied back into the layers."""
        self._buf_pack *= 1.0 / self.size
        off = 0
        for b in self._bufs:
            np.copyto(b, self._buf_pack[off:off + b.size].reshape(b.shape))
            off += b.size

    def _record_tuning(self, step) -> None:
        """A finished step's timing for the exchange tuner, while it explores."""
        if self.tuner is not None and not self.tuner.settled and step is not None:
            self.tuner.record(step)

    def close(self) -> None:
        """Complete a deferred step; stop the exchange thread (if any)."""
        self.complete_all()
        self.executor.close()

    # --- debug ------------------------------------------------------------------------
    def check_replicas(self) -> None:
        """Raise ReplicaMismatchError naming the ranks whose parameters or buffers
        (bit for bit) differ from rank 0's.  Collective."""
        t = time.perf_counter()
        digest, total = replica_digest(self.layout)
        table = self.comm.allgather((digest, total))
        self.stats_acc.checked(time.perf_counter() - t)
        ref = table[0]
        bad = [r for r, d in enumerate(table) if d[0] != ref[0]]
        if bad:
            sums = ", ".join(f"rank {r}: {table[r][1]:.10g}" for r in [0] + bad)
            raise ReplicaMismatchError(
                f"replicas diverged after step {self.steps_done}: rank(s) "
                f"{', '.join(map(str, bad))} hold parameters/buffers that differ from rank "
                f"0's (checksums {sums})")

    # --- statistics -------------------------------------------------------------------
    def reset_stats(self) -> None:
        self.stats_acc.reset()
        self._defer_waits, self._defer_codec, self._defer_finish = {}, {}, {}

    def stats(self) -> Dict[str, Any]:
        """Means per step (seconds) and bytes; see the module docstring."""
        out = self.stats_acc.summary()
        n = max(1.0, self.stats_acc.s["steps"])
        out.update(algorithm=(self.exchange.collective if self._cx else
                              choose_algorithm(self.grads.nbytes, self.topo, self.algorithm)),
                   comm_thread=self.executor.threaded,
                   # dist.defer_update: mean wait per step for each bucket ("lo-hi"), and
                   # the decoding (codec) inside those waits
                   deferred_waits={f"{a}-{b}": w / n
                                   for (a, b), w in sorted(self._defer_waits.items())},
                   deferred_codec={f"{a}-{b}": w / n
                                   for (a, b), w in sorted(self._defer_codec.items())},
                   # and what the deferred finish_step itself waited (after backward)
                   deferred_finish={k: w / n for k, w in self._defer_finish.items()},
                   tuning=self.tuner.report() if self.tuner is not None else [])
        return out

    # --- checkpoint state -------------------------------------------------------------
    def state_dict(self, gather: bool = True) -> Dict[str, Any]:
        """Collective: every rank's compressor state, gathered on rank 0 (which writes
        the checkpoint); other ranks get ``{}``.  ``gather=False`` (not collective):
        the same header with this rank's entry only, on every rank (a per-rank shard,
        ``dtnn.io.shards``)."""
        local = self.exchange.local_state() if self.exchange is not None else {}
        out: Dict[str, Any] = {"spec": self.options.compress, "world_size": self.size,
                               "steps_done": int(self.steps_done)}
        if not gather:
            out[f"rank{self.rank}"] = local
            return out
        table = self.comm.gather(local, root=0)
        if self.rank != 0:
            return {}
        for r, st in enumerate(table):
            out[f"rank{r}"] = st
        return out

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore this rank's part of ``state_dict()``; every rank calls it with the
        whole dict.  A different world size or compressor keeps a fresh state (the
        step counter is restored either way)."""
        if not state:
            return
        self.steps_done = int(state.get("steps_done", self.steps_done))
        if self.exchange is None:
            return
        mine = state.get(f"rank{self.rank}")
        if (state.get("spec") != self.options.compress
                or int(state.get("world_size", -1)) != self.size or mine is None):
            from dtnn.log import get_logger
            get_logger().warning("compressor state in the checkpoint does not match this "
                                 "run (compressor or number of processes changed): "
                                 "starting with empty error-feedback memory")
            return
        self.exchange.load_local_state(mine)


__all__ = ["GradientReducer", "ReplicaMismatchError", "SMALL_BUCKET_BYTES", "choose_algorithm",
           "float_buffers", "plan_buckets", "replica_digest"]
