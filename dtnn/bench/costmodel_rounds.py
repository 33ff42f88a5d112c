"""The cost model's progress-bound hops and blocking rounds (``costmodel.predict_step``
with ``progress=...``).

dtnn's collectives are state machines over nonblocking point-to-point messages (and
MPICH's own nonblocking collectives over TCP, which have no progress thread either):
a step of the collective (a *hop*) completes only when the rank tests it.  During
backward that happens in the backward hooks, so a hop posted between two hooks is
*seen* at the next hook; after backward the final wait tests continuously, except
while the rank runs codec work inside it.  A collective is a chain of hops; a
multi-round compressor (PowerSGD: P = M Q summed, then orthogonalise P, Q = M^T P
summed) is a chain of such collectives with codec between them.  From the protocol:

    ring / qring / summable payloads   2 (N-1) hops of m/N bytes per round
    gtopk                              2 (N-1) hops of 8k/N bytes
    allgather (ring)                   N-1 hops of one payload
    sparse (SparCML)                   1 hop (every range's entries straight to its
                                       owner), its sum, then N-1 hops of one range's
                                       block (sparse or dense), the decode after

(MPICH's own ``mpi`` collective keeps the continuous model; see ``HOP_COLLECTIVES``.)

A hop posted at t arrives at ``max(t, link free) + alpha + bytes beta`` (the link
carries one hop's bytes at a time, latencies overlap) and is seen at the first
progress point after it: the next hook while compute runs (hooks less than ``HOOK_CLUSTER`` apart count
as one: the peer cannot answer in between), else as soon as the
rank's CPU is free.  Per bucket, the codec runs where the protocol puts it: encode
before round 1, ``between`` (PowerSGD's orthogonalisation + Q = M^T P) before every
later round, decode after the last, and the quantised ring's codec spread over its
hops.  Codec during compute is counted by the step's codec term (it lengthens the
step, not the timeline here); codec after compute holds the CPU, so the other
buckets' hops wait for it.  After compute, a round's remaining hops advance as one
event (the CPU is not needed between them).

Inputs are the protocol and calibrations made apart from any validation step: the
hooks' moments (``ModelProfile.hooks``, one rank alone), alpha/beta (the sweeps),
the codec split per round (``model.measure_codec``, synthetic tensors) and the
hop wait of ranks sharing cores (``Oversub.wait_per_hop``, via the link's alpha).
"""
from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

#: dtnn's own point-to-point collectives, simulated hop by hop.  MPICH's (``mpi``)
#: keeps the continuous model: its schedule over TCP is not ours to derive, and its
#: fitted link (the sweeps) already carries how it progresses; hier too.
HOP_COLLECTIVES = ("ring", "qring", "allreduce", "gtopk", "allgather", "sparse")

#: hooks closer together than this count as one progress point (seconds): the hooks of
#: the cheap layers right after an expensive one (ReLU, BatchNorm, pooling) come before
#: any peer can answer, since the ranks' steps drift apart by several ms (the rounds
#: profile, ``dtnn.bench.model_rounds``: 8 ms at 2 hosts, 10-20 ms at 4; hops were seen
#: only at the first hook of such a cluster)
HOOK_CLUSTER = 1e-3


@dataclass
class Round:
    """One collective of a bucket: ``hops`` hops of ``hop_bytes`` bytes, ``cpu_before``
    seconds of codec before it starts, ``cpu_per_hop`` between its hops."""
    hops: int
    hop_bytes: float
    cpu_before: float = 0.0
    cpu_per_hop: float = 0.0


def bucket_rounds(collective: str, nbytes: float, codec, ranks: int) -> Tuple[List[Round], float]:
    """The rounds of one bucket of ``nbytes`` fp32 gradient and the codec after the
    last one (decode), from the protocol (see the module docstring)."""
    p = ranks
    n_el = nbytes / 4.0
    if codec is None:
        if collective != "ring":
            raise ValueError(f"no hop schedule for uncompressed {collective!r}")
        return [Round(2 * (p - 1), nbytes / p)], 0.0
    m = codec.payload_ratio * nbytes
    if collective == "allreduce":
        r = max(1, int(codec.rounds))
        between = getattr(codec, "between", 0.0) or 0.0
        out = [Round(2 * (p - 1), m / r / p, n_el * codec.encode)]
        out += [Round(2 * (p - 1), m / r / p, n_el * between) for _ in range(r - 1)]
        return out, n_el * codec.decode
    if collective == "qring":
        hops = 2 * (p - 1)
        return [Round(hops, m / p, 0.0, 2.0 * n_el * (codec.encode + codec.decode) / hops)], 0.0
    if collective == "gtopk":
        k = (codec.sparse_k or 0.01) * n_el
        return [Round(2 * (p - 1), 8.0 * k / p, n_el * codec.encode)], n_el * codec.decode
    if collective == "allgather":
        return [Round(p - 1, m, n_el * codec.encode)], n_el * p * codec.decode
    if collective == "sparse":
        from dtnn.bench.costmodel import sparse_cpu
        k = (codec.sparse_k or 0.01) * n_el
        if not (codec.sparse_entry or codec.sparse_pass):
            from dtnn.bench.costmodel import sparse_union
            block = min(8.0 * sparse_union(n_el, k, p), 4.0 * n_el) / p
            return ([Round(1, (p - 1) / p * 8.0 * k, n_el * codec.encode),
                     Round(p - 1, block)], n_el * codec.decode)
        reduce, decode, block = sparse_cpu(n_el, codec, p)
        return ([Round(1, (p - 1) / p * 8.0 * k, n_el * codec.encode),
                 Round(p - 1, block, reduce)], n_el * codec.decode + decode)
    raise ValueError(f"no hop schedule for collective {collective!r}")


def progress_points(hooks: Sequence[float], gap: float = HOOK_CLUSTER) -> List[float]:
    """Sorted hook times with each cluster (hooks less than ``gap`` after the previous
    one) reduced to its first."""
    out: List[float] = []
    last = None
    for h in sorted(hooks):
        if last is None or h - last >= gap:
            out.append(h)
        last = h
    return out


def _seen(t: float, hooks: Sequence[float], busy: float, cpu: float) -> float:
    """When a hop that arrived at ``t`` is seen: the next hook during compute, else
    when the CPU is free (the final wait starts at ``busy``)."""
    if t < busy:
        i = bisect.bisect_left(hooks, t)
        if i < len(hooks) and hooks[i] < busy:
            return hooks[i]
    return max(t, busy, cpu)


def hop_schedule(busy: float, buckets: Sequence[Tuple[float, float]], collective: str,
                 codec, ranks: int, link, progress: Sequence[float],
                 overlap: bool = True, round_wait: float = 0.0) -> Tuple[float, float, float]:
    """(finish of the last bucket, codec seconds that ran after compute, bytes moved
    while compute ran) of one step's buckets ``(bytes, ready fraction)`` whose
    collectives advance only at ``progress`` (fractions of ``busy``: the hooks) while
    compute runs.  ``round_wait``: seconds more for every round whose hops are still
    to go when compute has ended (ranks sharing cores: ``Oversub.round``)."""
    hooks = progress_points([f * busy for f in progress])
    free_link = 0.0
    cpu = busy            # the CPU is the compute's until busy
    codec_after = during = finish = 0.0
    state = []            # per bucket: [rounds, decode, round, hops done, hops in flight]
    # events in time order: (time, 0 = a bucket closes / 1 = a hop arrives, bucket)
    heap: List[Tuple[float, int, int]] = []

    def cpu_run(t: float, seconds: float) -> float:
        """Codec of ``seconds`` wanted at ``t``: free during compute (counted by the
        step's codec term), on the CPU after it; returns when it is done."""
        nonlocal cpu, codec_after
        if t < busy or seconds <= 0:
            return t
        cpu = max(t, cpu) + seconds
        codec_after += seconds
        return cpu

    def post(k: int, t: float) -> None:
        """Post bucket k's next hop at t (during compute), or all its round's remaining
        hops (after it: one after the other, as one event)."""
        nonlocal free_link, during
        st = state[k]
        rnd = st[0][st[2]]
        n = 1 if t < busy else rnd.hops - st[3]
        nbytes = n * rnd.hop_bytes
        free_link = max(t, free_link) + nbytes * link.beta
        if t < busy:
            during += nbytes
        st[4] = n
        heapq.heappush(heap, (free_link + link.alpha * n + (round_wait if t >= busy else 0.0),
                              1, k))

    def begin_round(k: int, t: float) -> None:
        st = state[k]
        st[3] = 0
        post(k, cpu_run(t, st[0][st[2]].cpu_before))

    for k, (nbytes, ready) in enumerate(buckets):
        rounds, decode = bucket_rounds(collective, nbytes, codec, ranks)
        state.append([rounds, decode, 0, 0, 0])
        t0 = (ready if overlap else 1.0) * busy
        if t0 < busy:        # posted by a hook: the one that completed the bucket
            i = bisect.bisect_left(hooks, t0 - 1e-9)   # its own hook (float noise)
            t0 = hooks[i] if i < len(hooks) and hooks[i] < busy else busy
        heapq.heappush(heap, (t0, 0, k))
    while heap:
        t, kind, k = heapq.heappop(heap)
        st = state[k]
        if kind == 0:
            begin_round(k, t)
            continue
        rnd = st[0][st[2]]
        seen = cpu_run(_seen(t, hooks, busy, cpu), rnd.cpu_per_hop * st[4])
        st[3] += st[4]
        if st[3] < rnd.hops:
            post(k, seen)
        elif st[2] + 1 < len(st[0]):
            st[2] += 1
            begin_round(k, seen)
        else:
            finish = max(finish, cpu_run(seen, st[1]))
    return finish, codec_after, during
