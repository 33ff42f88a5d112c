"""Online choice of the exchange's algorithm and bucket size (``dist.tune``).

``dtnn.tune.BestOf`` times whole training steps (finish_step to finish_step) under
each alternative, round-robin, drops clear losers after two rounds and fixes the
winner.  Every rank must use the same algorithm and buckets in every step, so the
statistics are reduced over *all* ranks (MAX: the slowest rank sets the pace), not
only over the node as the convolution tuner does; every rank therefore takes the
same decisions in the same step.

Two stages keep the number of tuning steps small: first the algorithm (at the
configured bucket size), then the bucket size (with the winning algorithm; only for
the uncompressed exchange, whose buckets can be re-cut between steps -- compressed
buckets carry error-feedback memory and keep theirs).  With compression the first
stage chooses between the collectives that can carry the compressor's payload.
Decisions are not cached on disk: they depend on the network, which the next run
may not share.
"""
from __future__ import annotations

from typing import Hashable, List, Optional, Sequence, Tuple

import numpy as np

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
        self.algo = BestOf("exchange.algorithm", algorithms,
                           default=start[0] if start[0] in algorithms else algorithms[0], **kw)
        self.bucket = (BestOf("exchange.bucket_mb", [_mb(b) for b in buckets],
                              default=_mb(start[1]) if start[1] in buckets else _mb(buckets[0]),
                              **kw) if len(buckets) > 1 else None)
        self.start_bucket = float(start[1])
        self._current: Optional[Tuple[str, float]] = None

    @property
    def settled(self) -> bool:
        return self.algo.settled(self.key) and (self.bucket is None
                                                or self.bucket.settled(self.key))

    def choose(self) -> Tuple[str, float]:
        """(algorithm, bucket_mb) for the coming step."""
        algo = self.algo.choose(self.key)
        bucket = self.start_bucket
        if self.bucket is not None and self.algo.settled(self.key):
            bucket = float(self.bucket.choose(self.key))
        self._current = (algo, bucket)
        return self._current

    def record(self, seconds: float) -> None:
        """The step just finished under the last ``choose()``."""
        if self._current is None:
            return
        algo, bucket = self._current
        if not self.algo.settled(self.key):
            self.algo.record(self.key, algo, seconds)
        elif self.bucket is not None and not self.bucket.settled(self.key):
            self.bucket.record(self.key, _mb(bucket), seconds)
        self._current = None

    def report(self) -> List[dict]:
        rows = self.algo.report()
        if self.bucket is not None:
            rows += self.bucket.report()
        return rows


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
    buckets = sorted({*BUCKET_CHOICES_MB, reducer.bucket_mb})
    return ExchangeTuner(reducer.comm, ("plain", reducer.size, topo.nodes, nbytes),
                         [start] + algos, buckets, (start, reducer.bucket_mb))


def _mb(value: float) -> str:
    return f"{float(value):g}"
