"""An alpha-beta cost model of dtnn's gradient exchange (``dtnn bench model``).

Links: a message of n bytes between two hosts takes ``alpha + n * beta`` (alpha:
latency and per-message cost; beta = 1 / usable bandwidth).  ``fit_link`` measures
alpha on the smallest messages and beta on the large ones of the simulated cluster's
allreduce sweeps (``dtnn bench collectives``).

Collectives (N ranks exchanging a vector of n bytes; every rank sends and receives
the same amount, the links are full duplex and switched):

    ring / qring      2 (N-1) alpha + 2 (N-1)/N n beta          (payload bytes for qring)
    mpi               2 log2(N) alpha + 2 (N-1)/N n beta        (recursive halving +
                      doubling; a non power of two costs one more exchange of n)
    hier              the ring between nodes on the node's sum: N = nodes, while the
                      node's L ranks reduce over shared memory (n / shm bandwidth)
    allgather         (N-1) alpha + (N-1) m beta               (m: one rank's payload)
    gtopk             2 (N-1) alpha + 2 (N-1)/N 8k beta         (k entries of 8 bytes)
    sparse (SparCML)  (N-1) alpha + (N-1)/N 8k beta  +  (N-1) alpha + (N-1)/N u beta,
                      u = min(8 k_union, 4 n), k_union = n (1 - (1 - k/n)^N); with
                      its own CPU calibrated (``sparse_cpu``): the range's sum before
                      the allgather, the N blocks' decode after it, each range sparse
                      or dense by the switch

Codec: seconds per element to encode and decode, measured on this machine
(``measure_codec``); the quantised ring encodes and decodes every element about
twice (once per hop of the reduce-scatter, once for the allgather).

Step (``predict_step``): the buckets become ready during backward at measured times
(``ready``: fraction of the step, from the backward hooks of one rank); each
bucket's collective starts when it is ready and the link is free, and the step ends
when the last one ends or compute ends, whichever is later:

    step = compute + codec + max(0, finish_of_last_bucket - compute)

Oversubscription (``Oversub``; ``s`` ranks per core, 1 on a real cluster): the CPU
the transfer takes (``s x cpu_per_byte`` per byte moved while compute runs)
lengthens compute; every hop waits ``(s - 1) x wait_per_hop`` more, and the step's
final wait ``(s - 1) x wait_per_step`` more, for peers without a core.  All three
are calibrated apart from the validation (``dtnn.bench.oversub``) and zero at
``Oversub()``:

    step = compute + cpu + codec + max(0, finish - compute - cpu) + (s - 1) wait_per_step

Communication efficiency = compute / step (compute without any exchange).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


@dataclass
class Link:
    alpha: float      # seconds per message
    beta: float       # seconds per byte
    name: str = ""

    @classmethod
    def nominal(cls, bits_per_second: float, efficiency: float = 0.95,
                alpha: float = 50e-6, name: str = "") -> "Link":
        """A link of this rate; ``efficiency``: the share TCP/IP leaves usable."""
        return cls(alpha, 8.0 / (bits_per_second * efficiency), name)


def _hops(algorithm: str, ranks: int) -> float:
    """Latency terms of one allreduce: 2 (N-1) for a ring, 2 log2 N for MPICH's
    recursive halving + doubling."""
    if algorithm == "mpi":
        return 2.0 * math.ceil(math.log2(ranks)) if ranks > 1 else 0.0
    return 2.0 * (ranks - 1)


def fit_link(rows: Sequence[Tuple[int, int, float]], name: str = "",
             algorithm: str = "ring", latency_bytes: int = 16384,
             bandwidth_bytes: int = 262144) -> Link:
    """alpha, beta of allreduce times ``(ranks, bytes, seconds)``:
    t = hops alpha + 2 (N-1)/N n beta.

    The two terms are measured where each dominates. A least-squares fit of both on
    all sizes cannot resolve alpha here: tc's token bucket lets a small message through
    at full speed (its burst), so small messages fall *below* the bandwidth line and
    the intercept comes out negative.  alpha: the smallest messages (at most
    ``latency_bytes``, inside the burst), per latency term, the least delayed count
    (the link's latency, not the waits of ranks sharing a core); beta: least squares
    on messages of at least ``bandwidth_bytes`` with that alpha taken off."""
    small = [r for r in rows if r[1] <= latency_bytes]
    if small:
        least = min(n for _, n, _ in small)
        alpha = min(t / _hops(algorithm, p) for p, n, t in small if n == least and p > 1)
    else:
        alpha = None
    big = [r for r in rows if r[1] >= bandwidth_bytes] or list(rows)
    if alpha is None:
        a = np.array([[_hops(algorithm, p), 2.0 * (p - 1) / p * n] for p, n, _ in big])
        t = np.array([s for _, _, s in big])
        (alpha, beta), *_ = np.linalg.lstsq(a, t, rcond=None)
        return Link(max(float(alpha), 1e-6), float(beta), name)
    x = np.array([2.0 * (p - 1) / p * n for p, n, _ in big])
    t = np.array([s - _hops(algorithm, p) * alpha for p, _, s in big])
    beta = float(np.dot(x, t) / np.dot(x, x))
    return Link(float(alpha), beta, name)


def _log2(n: int) -> float:
    return math.log2(n) if n > 1 else 0.0


def allreduce_seconds(algo: str, nbytes: float, ranks: int, link: Link,
                      local: int = 1, shm_bytes_per_s: float = 4e9) -> float:
    """Seconds of one allreduce of ``nbytes`` over ``ranks`` ranks (``local`` per node)."""
    if ranks <= 1 or nbytes <= 0:
        return 0.0
    if algo == "hier" and local > 1:
        nodes = max(1, ranks // local)
        intra = 2.0 * (local - 1) / local * nbytes / shm_bytes_per_s
        return intra + allreduce_seconds("ring", nbytes, nodes, link)
    p = ranks
    bw = 2.0 * (p - 1) / p * nbytes * link.beta
    if algo == "mpi":
        extra = 0.0 if p & (p - 1) == 0 else nbytes * link.beta
        return 2.0 * math.ceil(_log2(p)) * link.alpha + bw + extra
    return 2.0 * (p - 1) * link.alpha + bw


@dataclass
class Codec:
    """Seconds per element: encode (with error feedback if on) and decode."""
    encode: float
    decode: float
    payload_ratio: float          # payload bytes / fp32 bytes
    summable: bool = False
    rounds: int = 1
    sparse_k: Optional[float] = None   # top-k: fraction of entries
    #: seconds per element of the codec between rounds (PowerSGD: orthogonalise P,
    #: Q = M^T P, the residual), apart from ``encode`` (round 1's payload)
    between: float = 0.0
    #: SparCML's own CPU (``sparse_cpu``): seconds per (index, value) entry summed,
    #: marked or packed, and per element of a dense pass over a vector (zero-fill,
    #: nonzero scan, copy); 0: not calibrated (the compressor's decode stands in)
    sparse_entry: float = 0.0
    sparse_pass: float = 0.0
    #: the reducer's codec on these collectives, as a factor of the above (calibrated on
    #: each collective apart: ``model_calib.calibrate_codecs``)
    on_collective: Dict[str, float] = field(default_factory=dict)

    def on(self, collective: str) -> "Codec":
        """This codec as ``collective`` spends it."""
        f = self.on_collective.get(collective)
        if not f:
            return self
        return replace(self, encode=self.encode * f, between=self.between * f,
                       decode=self.decode * f, on_collective={})


def sparse_union(n_el: float, k: float, ranks: int) -> float:
    """Expected entries in the union of ``ranks`` independent top-k index sets of
    ``k`` out of ``n_el`` (the density SparCML's sum grows to)."""
    if n_el <= 0:
        return 0.0
    return n_el * (1.0 - (1.0 - min(1.0, k / n_el)) ** ranks)


def sparse_cpu(n_el: float, codec: "Codec", ranks: int) -> Tuple[float, float, float]:
    """(seconds of the range sum before the allgather, seconds of decode beyond the
    codec's own, bytes of one rank's allgather block) of SparCML's transport, from
    its protocol (``collectives/cx_sparse.py``).  The codec's ``encode`` and ``decode``
    stand for what every collective of a top-k payload does (staging, top-k with error
    feedback, a zero-filled output and one payload scattered into it: what
    ``calibrate_codecs`` scales them to).  Beyond that SparCML
    * sums, on rank j, the ~k entries the others sent for its range of n/N elements
      into a zeroed float and flag vector, scans the flags and packs the range as
      (index, value) pairs, or sends it dense once the union fills half of it
      (8 bytes per entry >= 4 per element: the switch): 3 passes over n/N, 2k
      entries, the union's share packed;
    * scatters the union's other entries (a dense range: one pass) into the bucket
      and writes it back (one pass over n)."""
    p = max(1, ranks)
    k = (codec.sparse_k or 0.01) * n_el
    rng = n_el / p
    union = sparse_union(n_el, k, p)
    dense = 2.0 * union >= n_el
    block = 4.0 * rng if dense else 8.0 * union / p
    e, d = codec.sparse_entry, codec.sparse_pass
    reduce = 3.0 * rng * d + 2.0 * k * e + (0.0 if dense else union / p * e)
    decode = n_el * d + (n_el * d if dense else max(0.0, union - k) * e)
    return reduce, decode, block


@dataclass
class Exchange:
    """What one step exchanges: buckets (bytes, ready at fraction of compute)."""
    buckets: List[Tuple[float, float]]
    small_bytes: float = 0.0


def transport_seconds(collective: str, nbytes: float, codec: Optional[Codec], ranks: int,
                      link: Link, local: int = 1) -> Tuple[float, float, float]:
    """(network seconds, codec seconds, bytes received per rank) of one bucket."""
    n_el = nbytes / 4.0
    p = ranks
    if codec is None:
        algo = collective
        sec = allreduce_seconds(algo, nbytes, p, link, local)
        return sec, 0.0, 2.0 * (p - 1) / p * nbytes / (local if algo == "hier" else 1)
    m = codec.payload_ratio * nbytes
    if collective == "allreduce":
        # a summable payload goes through the tuned allreduce: ring or recursive doubling
        sec = codec.rounds * min(allreduce_seconds(a, m / codec.rounds, p, link)
                                 for a in ("ring", "mpi"))
        return (sec, n_el * (codec.encode + codec.between + codec.decode),
                2.0 * (p - 1) / p * m)
    if collective == "allgather":
        return ((p - 1) * (link.alpha + m * link.beta),
                n_el * (codec.encode + p * codec.decode), (p - 1) * m)
    if collective == "qring":
        sec = 2.0 * (p - 1) * link.alpha + 2.0 * (p - 1) / p * m * link.beta
        hops = 2.0 * n_el * (codec.encode + codec.decode)
        return sec, hops, 2.0 * (p - 1) / p * m
    k = (codec.sparse_k or 0.01) * n_el
    rs = (p - 1) * link.alpha + (p - 1) / p * 8 * k * link.beta
    if collective == "gtopk":
        ag = (p - 1) * link.alpha + (p - 1) / p * 8 * k * link.beta
        got = 2.0 * (p - 1) / p * 8 * k
    else:  # sparse (SparCML): the union of N random top-k sets, or dense
        if codec.sparse_entry or codec.sparse_pass:
            reduce, decode, block_r = sparse_cpu(n_el, codec, p)
            ag = (p - 1) * (link.alpha + block_r * link.beta)
            return (rs + ag, n_el * (codec.encode + codec.decode) + reduce + decode,
                    (p - 1) / p * 8 * k + (p - 1) * block_r)
        union = sparse_union(n_el, k, p)
        block = min(8.0 * union, 4.0 * n_el)
        ag = (p - 1) * link.alpha + (p - 1) / p * block * link.beta
        got = (p - 1) / p * (8 * k + block)
    return rs + ag, n_el * (codec.encode + codec.decode), got


@dataclass
class Oversub:
    """What ranks sharing cores cost the exchange, beyond the compute they share.

    Calibrated by ``dtnn.bench.oversub`` (a synthetic workload on the simulated
    cluster, one run at one rank per core and one oversubscribed: ``fit_oversub``),
    never from the steps the model is validated against.  ``s`` = ranks per core of
    the machine the ranks share (the simulated cluster: all of them, on this
    machine's cores; a real cluster with one rank per core: 1).

    * ``cpu_per_byte``: CPU seconds the machine spends per byte a rank sends (TCP
      stack, simulated links, MPI progress), measured as the slow-down of compute that
      runs while a transfer does.  The machine does it for every rank and shares it
      over its cores, so the bytes a rank moves *while it computes* lengthen its
      compute by ``s x cpu_per_byte x bytes`` (at ``s < 1`` a spare core absorbs it).
      Bytes moved after compute only compete with ranks that wait.
    * ``wait_per_hop``: seconds more per message hop, per extra rank per core (a
      peer in a tight exchange loop that is not on a core answers late).
    * ``wait_per_step``: seconds more the step's final wait takes, per extra rank per
      core: after compute, the exchange waits for the peers that had no core to finish
      theirs (measured after a compute block, minus the same at one rank per core).
    * ``wait_per_round``: seconds more per blocking round that runs after compute next
      to codec work, per extra rank per core (the peer a hop needs is off its core
      while a core-mate runs codec; the ``chain`` phase).  With progress-bound hops
      (``predict_step(progress=...)``) every round still open after compute pays it,
      and it replaces ``wait_per_step`` (the final wait is that chain of rounds).
    """
    cpu_per_byte: float = 0.0
    wait_per_hop: float = 0.0
    wait_per_step: float = 0.0
    wait_per_round: float = 0.0

    def round(self, ranks_per_core: float) -> float:
        return self.wait_per_round * max(0.0, ranks_per_core - 1.0)

    def hop(self, ranks_per_core: float) -> float:
        return self.wait_per_hop * max(0.0, ranks_per_core - 1.0)

    def step(self, ranks_per_core: float) -> float:
        return self.wait_per_step * max(0.0, ranks_per_core - 1.0)

    def cpu(self, ranks_per_core: float, sent_bytes: float) -> float:
        if ranks_per_core < 1.0:
            return 0.0
        return self.cpu_per_byte * ranks_per_core * sent_bytes


def _schedule(compute: float, exchange: Exchange, ranks: int, link: Link, collective: str,
              codec: Optional[Codec], local: int, overlap: bool):
    """(finish of the last transfer, codec seconds, bytes per rank, bytes moved
    while compute still runs) of one step's buckets."""
    free = codec_total = recv = during = 0.0
    for nbytes, ready in exchange.buckets:
        net, cod, got = transport_seconds(collective, nbytes, codec, ranks, link, local)
        codec_total += cod
        recv += got
        start = max(free, (ready if overlap else 1.0) * compute)
        free = start + net
        if net > 0 and start < compute:
            during += got * min(1.0, (compute - start) / net)
    if exchange.small_bytes:
        net, _, got = transport_seconds("mpi" if codec is None else "ring",
                                        exchange.small_bytes, None, ranks, link, local)
        free += net
        recv += got
    return free, codec_total, recv, during


def _schedule_hops(compute: float, exchange: Exchange, ranks: int, link: Link,
                   collective: str, codec: Optional[Codec], local: int, overlap: bool,
                   progress: Sequence[float], round_wait: float = 0.0):
    """``_schedule`` with progress-bound hops (``costmodel_rounds.hop_schedule``):
    (finish, codec seconds, bytes per rank, bytes moved while compute runs, codec
    seconds after compute)."""
    from dtnn.bench.costmodel_rounds import hop_schedule
    free, codec_total, recv, _ = _schedule(compute, Exchange(exchange.buckets), ranks, link,
                                           collective, codec, local, overlap)
    free, after, during = hop_schedule(compute, exchange.buckets, collective, codec, ranks,
                                       link, progress, overlap, round_wait)
    if exchange.small_bytes:
        net, _, got = transport_seconds("mpi" if codec is None else "ring",
                                        exchange.small_bytes, None, ranks, link, local)
        free = max(free, compute) + net
        recv += got
    return free, codec_total, recv, during, after


def predict_step(compute: float, exchange: Exchange, ranks: int, link: Link,
                 collective: str = "ring", codec: Optional[Codec] = None, local: int = 1,
                 overlap: bool = True, oversub: Optional[Oversub] = None,
                 ranks_per_core: float = 1.0,
                 progress: Optional[Sequence[float]] = None) -> Dict[str, float]:
    """Step time, its split and the bytes per rank (see the module docstring).

    ``oversub`` at ``ranks_per_core``: its terms are added explicitly (``Oversub``):
    ``oversub_cpu`` lengthens compute (found by iterating: a longer compute overlaps
    more bytes), every hop and the step's final wait take longer; ``oversub`` in the
    result is what the three add to the step.

    ``progress`` (fractions of compute: the backward hooks): the collectives advance
    only there while compute runs, hop by hop, and the rounds of a multi-round
    compressor follow one another with their codec in between
    (``dtnn.bench.costmodel_rounds``); None: they advance continuously."""
    from dtnn.bench.costmodel_rounds import HOP_COLLECTIVES
    hops = progress is not None and ranks > 1 and collective in HOP_COLLECTIVES
    codec = codec.on(collective) if codec is not None else None
    over = oversub if oversub is not None and ranks > 1 else Oversub()
    s = ranks_per_core
    if over.hop(s):
        link = Link(link.alpha + over.hop(s), link.beta, link.name)
    extra = after = 0.0
    for _ in range(20):
        if hops:
            free, codec_total, recv, during, after = _schedule_hops(
                compute + extra, exchange, ranks, link, collective, codec, local, overlap,
                progress, over.round(s))
        else:
            free, codec_total, recv, during = _schedule(compute + extra, exchange, ranks,
                                                        link, collective, codec, local,
                                                        overlap)
        new = over.cpu(s, during)
        if abs(new - extra) <= 1e-7:
            break
        extra = new
    busy = compute + extra
    # codec that ran after compute inside the wait is in codec_total already
    exposed = max(0.0, free - busy - after) + (0.0 if hops else over.step(s))
    step = busy + codec_total + exposed
    out = {"step": step, "compute": busy, "codec": codec_total, "exposed": exposed,
           "comm": free, "efficiency": compute / step if step > 0 else 1.0,
           "recv_bytes": recv}
    if oversub is not None:
        plain = predict_step(compute, exchange, ranks, Link(link.alpha - over.hop(s),
                                                            link.beta, link.name),
                             collective, codec, local, overlap, progress=progress)
        out.update(oversub=step - plain["step"], oversub_cpu=extra,
                   oversub_hop=over.hop(s), oversub_step=0.0 if hops else over.step(s),
                   oversub_round=over.round(s) if hops else 0.0, ranks_per_core=s)
    return out


@dataclass
class ModelProfile:
    """One zoo model as the cost model sees it (measured on this machine)."""
    name: str
    params: int
    compute: float                       # seconds per step, one rank, one core
    ready: List[Tuple[float, float]] = field(default_factory=list)  # (bytes, fraction)
    #: every backward hook (where the reducer advances the collectives), as fractions
    #: of the step; empty: the layers with gradients (``ready``)
    hooks: List[float] = field(default_factory=list)

    @property
    def progress(self) -> List[float]:
        return sorted(self.hooks or [f for _, f in self.ready])

    def exchange(self, bucket_mb: float = 4.0, compressor=None) -> Exchange:
        """Cut the per-layer gradients (in backward order) into the reducer's buckets
        for ``bucket_mb`` and ``compressor`` (a dense payload gets smaller buckets and a
        small last one: ``dtnn.parallel.buckets.compressed_bucket_bytes``); a bucket is
        ready when its last layer is."""
        from dtnn.parallel.buckets import compressed_bucket_bytes, plan_buckets
        cap, last = compressed_bucket_bytes(compressor, max(1, int(bucket_mb * (1 << 20))))
        groups = _SizedGroups([int(nbytes) // 4 for nbytes, _ in self.ready])
        n = len(self.ready)
        # group g is ready[n - 1 - g]: the layout lists the last layer first
        return Exchange([(4.0 * (b - a), self.ready[n - 1 - g][1])
                         for a, b, g in plan_buckets(groups, cap, last)])


class _SizedGroups:
    """The gradient layout ``plan_buckets`` reads, from the layers' sizes alone
    (backward order, the last layer first); no gradient memory behind it."""

    def __init__(self, sizes: List[int]):
        n = len(sizes)
        self.flat_grads = np.broadcast_to(np.float32(0.0), (sum(sizes),))
        self._ranges, off = [None] * n, 0
        for j, size in enumerate(sizes):
            self._ranges[n - 1 - j] = (off, off + size)
            off += size

    @property
    def num_groups(self) -> int:
        return len(self._ranges)

    def group_range(self, g: int) -> Tuple[int, int]:
        return self._ranges[g]

    def replica_arrays(self) -> List[np.ndarray]:   # the layout protocol's; not read here
        return []
