"""Online choice of the exchange's algorithm and bucket size (``dist.tune``).

``dtnn.tune.BestOf`` times whole training steps (finish_step to finish_step) under
each alternative, round-robin, drops clear losers after two rounds and fixes the
winner.  Every rank must use the same algorithm and buckets in every step, so the
statistics are reduced over *all* ranks (MAX: the slowest rank sets the pace), not
only over the node as the convolution tuner does; every rank therefore takes the
same decisions in the same step.

The uncompressed exchange, whose buckets can be re-cut between steps, tunes the
algorithm and the bucket size *together*: one alternative per (algorithm, bucket
plan).  Bucket sizes that cut the gradient into the same buckets are one plan, timed
once (for a 1.7 MB model 4, 16 and 64 MiB are all "one bucket").  Tuning the two one
after the other chose the algorithm at the configured size only: on simplecnn (4 hosts,
1 Gbit/s) that is one bucket posted after backward, where MPI wins, so the ring with
1 MiB buckets -- whose dense layer's bucket starts half a step earlier, 0.89 of the
optimal allreduce against 0.66-0.76 for the pick -- was never timed
(benchmarks/results/scaling.md, #17).  Compressed buckets carry error-feedback memory
and keep theirs: there the tuner chooses between the collectives that can carry the
compressor's payload.
Decisions are not cached on disk: they depend on the network, which the next run
may not share.
"""
from __future__ import annotations

from typing import Hashable, List, Optional, Sequence, Tuple

import numpy as np

MiB = 1 << 20

BUCKET_CHOICES_MB = (1.0, 4.0, 16.0, 64.0)


class _WorldMax:
    """What BestOf calls its node communicator, reducing over every rank instead."""

    def __init__(self, comm):
        self.comm = comm

    def node_allreduce(self, values, op: str = "max"):
        from mpi4py import MPI
        arr = np.ascontiguousarray(values, dtype=np.float64)
        out = np.empty_like(arr)
        self.comm.Allreduce(arr, out, op={"max": MPI.MAX, "min": MPI.MIN,
                                          "sum": MPI.SUM}[op])
        return out


class ExchangeTuner:
    """``choose()`` / ``record()`` per step; one BestOf over ``algorithm@bucket_mb``
    when there are several bucket sizes, over the algorithms alone otherwise."""

    def __init__(self, comm, key: Hashable, algorithms: Sequence[str],
                 buckets_mb: Sequence[float], start: Tuple[str, float],
                 rounds: int = 3, warmup: int = 1):
        from dtnn.tune import BestOf
        self.key = key
        world = _WorldMax(comm)
        kw = dict(rounds=rounds, warmup=warmup, prune_after=2, prune_ratio=1.25,
                  gross_ratio=2.0, comm=world, cache=None)
        algorithms = list(dict.fromkeys(algorithms))
        buckets = [float(b) for b in dict.fromkeys(buckets_mb)]
        algo0 = start[0] if start[0] in algorithms else algorithms[0]
        self.start_bucket = float(start[1])
        self.joint = len(buckets) > 1
        if self.joint:
            names = [_joint(a, b) for a in algorithms for b in buckets]
            bucket0 = self.start_bucket if self.start_bucket in buckets else buckets[0]
            self.tuner = BestOf("exchange.algorithm+bucket_mb", names,
                                default=_joint(algo0, bucket0), **kw)
        else:
            self.tuner = BestOf("exchange.algorithm", algorithms, default=algo0, **kw)
        self._current: Optional[Tuple[str, float]] = None
        self._last: Optional[Tuple[str, float]] = None   # what the previous step ran
        self._switched = False

    @property
    def settled(self) -> bool:
        return self.tuner.settled(self.key)

    def choose(self) -> Tuple[str, float]:
        """(algorithm, bucket_mb) for the coming step."""
        name = self.tuner.choose(self.key)
        self._current = _split(name) if self.joint else (name, self.start_bucket)
        self._switched = self._current != self._last
        self._last = self._current
        return self._current

    def record(self, seconds: float) -> None:
        """The step just finished under the last ``choose()``."""
        if self._current is None:
            return
        algo, bucket = self._current
        # the first step after a switch is not counted (the same alternative runs again):
        # it inherits the previous alternative's skew between the ranks (ring vs
        # recursive doubling end the step at different moments on different ranks),
        # which biased the round-robin (simplecnn, 4 hosts: MPI with one bucket timed
        # fastest while tuning, 10 % slower than the ring afterwards).  Every rank
        # switches in the same step, so all discard the same samples.
        self.tuner.record(self.key, _joint(algo, bucket) if self.joint else algo, seconds,
                          valid=not self._switched)
        self._current = None

    def report(self) -> List[dict]:
        return self.tuner.report()


def exchange_tuner(reducer) -> Optional[ExchangeTuner]:
    """The tuner of ``reducer`` (a ``GradientReducer``) as ``dist.tune`` asks, or None:
    off on one rank, with ``tune = false``, with ``auto`` on a single node, and for a
    compressor that only one collective can carry."""
    from dtnn.parallel.collectives.choice import (candidate_collectives, choose_algorithm,
                                                  hier_possible)
    tune, topo = str(reducer.options.tune).lower(), reducer.topo
    if reducer.size == 1 or tune in ("false", "off", "0") or (
            tune == "auto" and not topo.multi_node):
        return None
    if reducer.exchange is not None:
        collectives = candidate_collectives(reducer.compressor, reducer.size)
        if len(collectives) < 2:
            return None
        return ExchangeTuner(reducer.comm, ("cx", reducer.options.compress, reducer.size,
                                            topo.nodes),
                             collectives, [reducer.bucket_mb],
                             (reducer.exchange.collective, reducer.bucket_mb))
    nbytes = reducer.grads.nbytes
    algos = ["ring", "mpi"] + (["hier"] if hier_possible(topo) else [])
    start = choose_algorithm(nbytes, topo, reducer.algorithm)
    buckets = distinct_plans(reducer.layout, sorted({*BUCKET_CHOICES_MB, reducer.bucket_mb}),
                             prefer=reducer.bucket_mb)
    if getattr(reducer.options, "defer_update", False):
        buckets = split_plans(reducer.layout, buckets)
    bucket0 = reducer.bucket_mb if reducer.bucket_mb in buckets else buckets[0]
    return ExchangeTuner(reducer.comm, ("plain", reducer.size, topo.nodes, nbytes),
                         [start] + algos, buckets, (start, bucket0))


def split_plans(layout, buckets_mb: Sequence[float]) -> List[float]:
    """With the update deferred (``dist.defer_update``), the sizes whose plan has more
    than one bucket (all of them if none has).  One bucket is posted after backward and
    is the one the next forward's first layer waits for: nothing of the collective can
    overlap either pass.  Its step times while tuning are as noisy as the others', and
    on simplecnn (4 hosts, 1 Gbit/s) the tuner took MPI with one bucket in 2 of 10 runs,
    0.71-0.72 of the optimal allreduce against 0.85-0.97 for 1 MiB buckets
    (benchmarks/results/scaling.md, #17)."""
    from dtnn.parallel.buckets import plan_buckets
    kept = [mb for mb in buckets_mb
            if len(plan_buckets(layout, max(1, int(mb * MiB)))) > 1]
    return kept or list(buckets_mb)


def distinct_plans(layout, buckets_mb: Sequence[float], prefer: float) -> List[float]:
    """``buckets_mb`` with sizes that cut ``layout``'s gradient into the same buckets
    counted once (``prefer`` stands for its plan, else the smallest size of a plan)."""
    from dtnn.parallel.buckets import plan_buckets
    chosen: dict = {}
    for mb in sorted(float(b) for b in buckets_mb):
        plan = tuple(plan_buckets(layout, max(1, int(mb * MiB))))
        if plan not in chosen or mb == float(prefer):
            chosen[plan] = mb
    return sorted(chosen.values())


def _mb(value: float) -> str:
    return f"{float(value):g}"


def _joint(algorithm: str, bucket_mb: float) -> str:
    return f"{algorithm}@{_mb(bucket_mb)}"


def _split(name: str) -> Tuple[str, float]:
    algorithm, _, mb = name.rpartition("@")
    return algorithm, float(mb)
