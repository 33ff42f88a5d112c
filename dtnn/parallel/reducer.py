"""Gradient exchange for data parallelism: average ``model.flat_grads`` over all ranks.

Buckets
    Contiguous slices of ``model.flat_grads``.  The flat vector is laid out in reverse
    layer order (see ``dtnn.models.model``), so walking the layers backwards and cutting
    after a layer once a bucket holds ``bucket_mb`` MiB gives buckets that fill, in
    order, from the front of the vector as backward runs.  A bucket never splits a
    layer; ``bucket_mb = 0`` makes one bucket per layer with parameters.

What it reduces
    A *gradient layout* (``dtnn.parallel.layout``): a dtnn ``Model`` (wrapped in
    ``ModelLayout``; groups = layers) or anything else with a flat float32 gradient
    buffer and per-group ranges, e.g. ``dtnn.torch``'s layout over torch parameters.

Overlap mode (default)
    ``on_grads_ready(i)`` is called by ``Model.backward`` after layer (group) ``i``;
    once every group of the next unposted bucket has reported, its
    ``Iallreduce(IN_PLACE, SUM)`` starts at once (buckets are posted strictly in
    order, so every rank issues the same collectives in the same order).
    ``post_remaining()`` posts what is left (groups that never reported: unused
    parameters).  MPICH (without an asynchronous progress thread) advances a nonblocking
    collective only inside MPI calls, so every hook also calls ``Testsome`` on the
    buckets in flight: that is what makes the exchange actually run during backward
    instead of inside the final wait.  ``finish_step()`` waits for the rest and
    scales the whole vector by 1/size once, in place.

Blocking mode (reference)
    One ``Allreduce`` of the whole flat gradient after backward.

BatchNorm running statistics
    Each rank normalises with the statistics of its own shard (no cross-rank batch
    statistics), so replicas would drift apart in their running mean/var.  With
    ``average_buffers`` (default) the float buffers are averaged every step: they are
    final after the forward pass, so their (tiny) ``Iallreduce`` starts in
    ``start_step()`` and hides behind backward.  Every replica then holds identical
    running statistics = the mean over ranks of what each rank's update produced.

Timing (``stats()``)
    Per step: ``compute`` (everything that is not an MPI call made here: forward,
    backward, optimizer, data), ``exposed`` (time blocked in ``finish_step``: the part
    of the exchange that did not hide behind backward; in blocking mode all of it),
    ``hook_mpi`` (time inside MPI calls made from the hooks: posting and testing),
    ``comm`` (first bucket posted -> last bucket seen complete: the communication
    window) and the bytes reduced per rank per step (``payload_bytes``) plus the
    bytes a bandwidth-optimal (ring / reduce-scatter + allgather) allreduce sends per
    rank, ``2 (p-1)/p * payload`` (``wire_bytes_estimate``).

Compression (``options.compress != "none"``)
    The buckets are handed to ``dtnn.parallel.exchange.CompressedExchange``: each
    bucket is compressed when it closes and sent by ``Iallreduce`` (summable payloads)
    or ``Iallgather`` (the rest); ``finish_step`` decodes the averages.  Small tensors
    go uncompressed in one batched allreduce; the first ``compress_warmup_steps``
    steps (and PowerSGD's ``start_step``) use the plain path above.  ``stats()`` adds
    ``codec_seconds`` (compressing + decoding, excluded from ``compute``) and
    ``sent_bytes`` (payload bytes this rank contributed per step).
    ``state_dict()``/``load_state_dict()`` carry the compressor state (error-feedback
    residuals, PowerSGD's Q, the step counter the RNG streams are keyed by) of every
    rank through a checkpoint.
"""
from __future__ import annotations

import hashlib
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from dtnn.parallel.layout import as_layout
from dtnn.parallel.options import DistOptions
from dtnn.parallel.watchdog import guard as stall_guard
from dtnn.errors import UserError

MiB = 1 << 20


class ReplicaMismatchError(UserError):
    """check_replicas found replicas whose parameters or buffers differ."""


def plan_buckets(model, bucket_bytes: int) -> List[Tuple[int, int, int]]:
    """``[(start, stop, close_group)]``: bucket slices of the flat vector, in backward
    order; ``close_group`` is the last group (layer) cut into the bucket.  ``model`` is
    a dtnn Model or any gradient layout (``dtnn.parallel.layout``)."""
    layout = as_layout(model)
    itemsize = layout.flat_grads.itemsize
    buckets: List[Tuple[int, int, int]] = []
    start = stop = 0
    last_group = -1
    for i in reversed(range(layout.num_groups)):
        a, b = layout.group_range(i)
        if b <= a:
            continue
        if a != stop:
            raise RuntimeError(f"layer {i}'s parameters [{a}, {b}) do not follow [{start}, "
                               f"{stop}): flat vectors are not in reverse layer order")
        stop, last_group = b, i
        if (stop - start) * itemsize >= bucket_bytes:
            buckets.append((start, stop, i))
            start = stop
    if stop > start:
        buckets.append((start, stop, last_group))
    if stop != layout.flat_grads.size:
        raise RuntimeError(f"buckets cover {stop} of {layout.flat_grads.size} gradients")
    return buckets


def float_buffers(model) -> List[np.ndarray]:
    """The model's floating-point buffers (BN running stats), in a fixed order."""
    bufs = as_layout(model).buffers()
    return [bufs[k] for k in sorted(bufs) if np.issubdtype(bufs[k].dtype, np.floating)]


def replica_digest(model) -> Tuple[int, float]:
    """(64-bit hash of parameters + buffers, float64 sum): equal iff bit-identical."""
    h = hashlib.sha256()
    total = 0.0
    for arr in as_layout(model).replica_arrays():
        h.update(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
        total += float(np.sum(arr, dtype=np.float64))
    return int.from_bytes(h.digest()[:8], "little", signed=True), total


class GradientReducer:
    """Averages ``model.flat_grads`` over ``comm``; driven by the trainer as

        reducer.start_step()
        model.backward(dy, on_grads_ready=reducer.on_grads_ready)
        reducer.finish_step()
    """

    def __init__(self, comm, model, options: Optional[DistOptions] = None):
        from mpi4py import MPI
        self._MPI = MPI
        self.comm = comm
        self.size = comm.Get_size()
        self.rank = comm.Get_rank()
        self.model = model
        self.layout = layout = as_layout(model)
        self.options = options or DistOptions()
        self.mode = self.options.mode
        grads = layout.flat_grads
        if not (grads.flags.c_contiguous and grads.dtype == np.float32):
            raise RuntimeError("model.flat_grads must be a contiguous float32 vector")
        self.grads = grads
        bucket_bytes = max(1, int(self.options.bucket_mb * MiB))
        self.compressor, self.exchange = None, None
        if self.options.compress not in ("", "none"):
            from dtnn.compress import build_compressor
            self.compressor, use_ef = build_compressor(self.options.compress)
        if self.compressor is not None and self.compressor.single_bucket:
            bucket_bytes = grads.nbytes + 1
        self.buckets = plan_buckets(layout, bucket_bytes)
        if self.compressor is not None:
            from dtnn.parallel.exchange import CompressedExchange
            self.exchange = CompressedExchange(comm, layout, self.buckets, self.compressor,
                                               use_ef, self.options.min_compress_size,
                                               self.options.compress_seed)
        self.compress_warmup = max(self.options.compress_warmup_steps,
                                   getattr(self.compressor, "warmup_steps", 0))
        self._cx = False
        self._posted = 0
        self._views = [grads[a:b] for a, b, _ in self.buckets]
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
        self._requests: List[Any] = []
        self._pending: List[int] = []
        self._bufs = float_buffers(layout) if self.options.average_buffers else []
        self._buf_pack = np.zeros(sum(b.size for b in self._bufs), np.float64)
        self._buf_req = None
        self._scale = np.float32(1.0 / self.size)
        self.payload_bytes = int(grads.nbytes + self._buf_pack.nbytes)
        self.steps_done = 0
        self._in_step = False
        self._last_end: Optional[float] = None
        self.reset_stats()

    # --- the three calls per step -----------------------------------------------------
    def start_step(self) -> None:
        if self._in_step:
            raise RuntimeError("start_step() called twice without finish_step()")
        self._in_step = True
        self._t0 = time.perf_counter()
        self._hook_mpi = 0.0
        self._first_post: Optional[float] = None
        self._last_done: Optional[float] = None
        self._requests, self._pending = [], []
        self._posted = 0
        self._missing = list(self._group_count)
        self._seen = bytearray(len(self._seen))
        self._cx = self.exchange is not None and self.steps_done >= self.compress_warmup
        self._codec = 0.0
        if self._cx:
            self.exchange.begin(self.steps_done)
        if self._bufs:
            off = 0
            for b in self._bufs:  # forward already updated them: final for this step
                self._buf_pack[off:off + b.size] = b.ravel()
                off += b.size
            t = time.perf_counter()
            self._buf_req = self.comm.Iallreduce(self._MPI.IN_PLACE, self._buf_pack,
                                                 op=self._MPI.SUM)
            self._hook_mpi += time.perf_counter() - t

    def on_grads_ready(self, layer: int) -> None:
        """Group (layer) ``layer``'s gradients are final for this step: post every
        bucket, in order, whose groups are all ready; test the ones in flight."""
        if self.mode != "overlap":
            return
        k = self._bucket_of.get(layer)
        if k is not None:
            if self._seen[layer]:
                k = None   # reported twice: count once
            else:
                self._seen[layer] = 1
                self._missing[k] -= 1
        ready = self._posted < len(self.buckets) and self._missing[self._posted] == 0
        if not ready and not (self.options.progress and self._pending):
            return
        t = time.perf_counter()
        while self._posted < len(self.buckets) and self._missing[self._posted] == 0:
            self._post(self._posted)
        if self.options.progress and self._pending:
            self._test_pending()
        self._hook_mpi += time.perf_counter() - t - (self.exchange.codec_seconds - self._codec
                                                     if self._cx else 0.0)
        if self._cx:
            self._codec = self.exchange.codec_seconds

    def post_remaining(self) -> None:
        """Post, in order, every bucket not posted yet, whatever its groups reported:
        gradients nobody produced this step (unused parameters) go as they are.  For
        callers that cannot promise a hook per group (``dtnn.torch``); a no-op in
        blocking mode (``finish_step`` sends everything)."""
        if self.mode != "overlap" or not self._in_step:
            return
        t = time.perf_counter()
        c0 = self.exchange.codec_seconds if self._cx else 0.0
        while self._posted < len(self.buckets):
            self._post(self._posted)
        self._hook_mpi += time.perf_counter() - t - ((self.exchange.codec_seconds - c0)
                                                     if self._cx else 0.0)
        if self._cx:
            self._codec = self.exchange.codec_seconds

    def _post(self, k: int) -> None:
        if self._first_post is None:
            self._first_post = time.perf_counter()
        if self._cx:
            self._post_compressed(k)
        else:
            self._requests.append(self.comm.Iallreduce(self._MPI.IN_PLACE, self._views[k],
                                                        op=self._MPI.SUM))
            self._pending.append(len(self._requests) - 1)
        self._posted += 1

    def _post_compressed(self, k: int) -> None:
        for req in self.exchange.post(k):
            self._requests.append(req)
            self._pending.append(len(self._requests) - 1)

    def _test_pending(self) -> None:
        reqs = [self._requests[j] for j in self._pending]
        done = self._MPI.Request.Testsome(reqs)
        if done:
            self._last_done = time.perf_counter()
            finished = {self._pending[d] for d in done}
            self._pending = [j for j in self._pending if j not in finished]

    def finish_step(self) -> None:
        if not self._in_step:
            raise RuntimeError("finish_step() without start_step()")
        # every wait of the step's collectives, whatever the algorithm: timed by the
        # watchdog (dist.stall_timeout), which names the ranks that did not arrive
        with stall_guard("gradient exchange", self.steps_done + 1):
            self._finish_step()

    def _finish_step(self) -> None:
        t_wait = time.perf_counter()
        decode = 0.0
        if self._cx:
            if self.mode == "blocking":
                self._first_post = t_wait
                for k in range(len(self.buckets)):
                    self._post_compressed(k)
                self._posted = len(self.buckets)
            elif self._posted != len(self.buckets):
                raise RuntimeError(f"only {self._posted} of {len(self.buckets)} "
                                   "buckets were started: was backward run with "
                                   "on_grads_ready=reducer.on_grads_ready?")
            decode = self.exchange.finish()
            self._last_done = time.perf_counter()
            self._pending = []
        elif self.mode == "blocking":
            self._first_post = t_wait
            self.comm.Allreduce(self._MPI.IN_PLACE, self.grads, op=self._MPI.SUM)
            self._last_done = time.perf_counter()
        else:
            if self._posted != len(self.buckets):
                raise RuntimeError(f"only {self._posted} of {len(self.buckets)} "
                                   "buckets were started: was backward run with "
                                   "on_grads_ready=reducer.on_grads_ready?")
            if self._pending:
                self._MPI.Request.Waitall([self._requests[j] for j in self._pending])
                self._last_done = time.perf_counter()
                self._pending = []
        if self.size > 1 and not self._cx:
            np.multiply(self.grads, self._scale, out=self.grads)
        if self._buf_req is not None:
            self._buf_req.Wait()
            self._buf_req = None
            self._buf_pack *= 1.0 / self.size
            off = 0
            for b in self._bufs:
                np.copyto(b, self._buf_pack[off:off + b.size].reshape(b.shape))
                off += b.size
        t_end = time.perf_counter()
        self._in_step = False
        self._requests = []
        self.steps_done += 1
        codec = self.exchange.codec_seconds if self._cx else 0.0
        self._stats["codec"] += codec
        self._stats["sent"] += (self.exchange.sent_bytes + self._buf_pack.nbytes if self._cx
                                else self.payload_bytes)
        self._account(t_wait, t_end, decode, codec)
        if self.options.check_replicas:
            self.check_replicas()

    # --- debug ------------------------------------------------------------------------
    def check_replicas(self) -> None:
        """Raise ReplicaMismatchError naming the ranks whose parameters or buffers
        (bit for bit) differ from rank 0's.  Collective."""
        t = time.perf_counter()
        digest, total = replica_digest(self.layout)
        table = self.comm.allgather((digest, total))
        spent = time.perf_counter() - t
        self._stats["check_seconds"] += spent
        self._check_since_last += spent
        ref = table[0]
        bad = [r for r, d in enumerate(table) if d[0] != ref[0]]
        if bad:
            sums = ", ".join(f"rank {r}: {table[r][1]:.10g}" for r in [0] + bad)
            raise ReplicaMismatchError(
                f"replicas diverged after step {self.steps_done}: rank(s) "
                f"{', '.join(map(str, bad))} hold parameters/buffers that differ from rank "
                f"0's (checksums {sums})")

    # --- statistics -------------------------------------------------------------------
    def _account(self, t_wait: float, t_end: float, decode: float = 0.0,
                 codec: float = 0.0) -> None:
        s = self._stats
        exposed = t_end - t_wait - decode
        comm = 0.0
        if self._first_post is not None and self._last_done is not None:
            comm = max(0.0, self._last_done - self._first_post)
        s["steps"] += 1
        s["exposed"] += exposed
        s["hook_mpi"] += self._hook_mpi
        s["comm"] += comm
        s["backward_window"] += t_wait - self._t0
        if self._last_end is not None:
            step = t_end - self._last_end
            s["timed_steps"] += 1
            s["step"] += step
            s["compute_timed"] += (step - exposed - self._hook_mpi - self._check_since_last
                                   - codec)
            s["codec_timed"] += codec
            s["exposed_timed"] += exposed
        self._last_end = t_end
        self._check_since_last = 0.0

    def reset_stats(self) -> None:
        self._stats: Dict[str, float] = {k: 0.0 for k in (
            "steps", "timed_steps", "exposed", "hook_mpi", "comm", "backward_window",
            "step", "compute_timed", "exposed_timed", "check_seconds", "codec", "codec_timed",
            "sent")}
        self._last_end = None
        self._check_since_last = 0.0

    def stats(self) -> Dict[str, Any]:
        """Means per step (seconds) and bytes; see the module docstring."""
        s = self._stats
        n = max(1.0, s["steps"])
        nt = max(1.0, s["timed_steps"])
        p = self.size
        return {
            "mode": self.mode, "ranks": p, "buckets": len(self.buckets),
            "bucket_mb": self.options.bucket_mb, "progress": self.options.progress,
            "steps": int(s["steps"]),
            "step_seconds": s["step"] / nt if s["timed_steps"] else None,
            "compute_seconds": s["compute_timed"] / nt if s["timed_steps"] else None,
            "exposed_comm_seconds": s["exposed"] / n,
            "hook_mpi_seconds": s["hook_mpi"] / n,
            "comm_seconds": s["comm"] / n,
            "backward_seconds": s["backward_window"] / n,
            "check_seconds": s["check_seconds"] / n,
            "payload_bytes": self.payload_bytes,
            "wire_bytes_estimate": int(2 * (p - 1) / p * self.payload_bytes) if p > 1 else 0,
            "compress": self.options.compress,
            "codec_seconds": s["codec"] / n,
            "sent_bytes": s["sent"] / n,
            "compression_ratio": (self.payload_bytes / (s["sent"] / n)) if s["sent"] else 1.0,
        }

    # --- checkpoint state -------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """Collective: every rank's compressor state, gathered on rank 0 (which writes
        the checkpoint); other ranks get ``{}``."""
        local = self.exchange.local_state() if self.exchange is not None else {}
        table = self.comm.gather(local, root=0)
        if self.rank != 0:
            return {}
        out: Dict[str, Any] = {"spec": self.options.compress, "world_size": self.size,
                               "steps_done": int(self.steps_done)}
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
