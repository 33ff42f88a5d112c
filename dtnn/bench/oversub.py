"""Calibrate what ranks sharing cores cost the exchange (``dtnn bench model --oversub``).

Run under ``mpiexec`` on the simulated cluster, once with one rank per core (2 hosts
here) and once oversubscribed (4 hosts = 4 ranks on 2 cores)::

    launch/simcluster.sh up 4 1gbit
    launch/simcluster.sh run -- -n 4 .venv/bin/python -m dtnn.bench.oversub --json OUT.jsonl

It is a synthetic workload, not a training step, so the cost model's validation rows
stay out of its calibration.  Every rank runs the same fixed compute block (BLAS
matrix products, one thread, cut into slices like the layers of a backward pass) in
these phases:

``compute``   the block alone: the wall time with this many ranks on these cores;
``sync_alone`` a 4 KiB ring allreduce in a tight loop (the hop latency);
``sync``      the block, then the same allreduce: the time a rank waits in it
              beyond the link's latency is the wait for a peer without a core;
``buckets``   the block with three small ring allreduces posted at 50, 75 and 95 %
              of it and advanced between the slices, as the reducer's buckets are:
              the wait after the block is the step's final wait for its peers;
``chain``     ``chain_rounds`` times: a short block (``chain_slices`` slices, a codec
              step's worth) then the small ring allreduce, waited for: the chain of
              blocking rounds with codec in between that a multi-round compressor
              (PowerSGD) runs after backward; the wait per round beyond ``sync_alone``
              is what a round next to codec work costs ranks sharing cores;
``traffic``   the block while a ring allreduce of ``--traffic-bytes`` runs behind it,
              advanced between the slices (as the reducer's backward hooks do): the
              block's slow-down per byte the rank sends is the CPU the machine spends on
              the transfer (TCP stack, simulated links, MPI progress), shared by every
              rank on the same cores.

The machine's ``/proc/stat`` deltas (user, system, softirq, idle) are recorded per
phase on rank 0, to show where the cores went.
"""
from __future__ import annotations

import os
import time
from typing import Any, Dict, List

import numpy as np


def _cpu_times() -> List[int]:
    try:
        with open("/proc/stat") as fh:
            return [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return []


def _cpu_split(a: List[int], b: List[int]) -> Dict[str, float]:
    """Shares of the machine's CPU time between two /proc/stat readings."""
    if not a or not b:
        return {}
    d = [y - x for x, y in zip(a, b)]
    total = float(sum(d[:8])) or 1.0
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return {n: v / total for n, v in zip(names, d[:8])}


class Block:
    """A fixed amount of compute, cut into ``slices`` equal pieces."""

    def __init__(self, slices: int, n: int = 192, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.a = rng.standard_normal((n, n)).astype(np.float32)
        self.b = rng.standard_normal((n, n)).astype(np.float32) / n
        self.out = np.empty_like(self.a)
        self.slices = slices

    def slice(self, reps: int = 4) -> None:
        for _ in range(reps):
            np.matmul(self.a, self.b, out=self.out)

    def run(self, between=None) -> float:
        t = time.perf_counter()
        for _ in range(self.slices):
            self.slice()
            if between is not None:
                between()
        return time.perf_counter() - t


def run(comm, repeats: int = 8, slices: int = 60, traffic_bytes: int = 4 << 20,
        sync_bytes: int = 4096, bucket_at=(0.5, 0.75, 0.95), chain_slices: int = 6,
        chain_rounds: int = 6) -> Dict[str, Any]:
    from mpi4py import MPI
    from dtnn.parallel import collectives as C
    topo = C.Topology(comm)
    ring = C.build("ring", topo)
    block = Block(slices, seed=topo.rank)
    short = Block(chain_slices, seed=topo.rank)
    small = np.ones(max(1, sync_bytes // 4), np.float32)
    big = np.ones(max(1, traffic_bytes // 4), np.float32)
    block.run()                                        # warm caches and BLAS
    C.wait([ring.start(small.copy())])
    C.wait([ring.start(big.copy())])

    def phase(name: str, body) -> Dict[str, Any]:
        rows = []
        cpu0 = _cpu_times()
        for i in range(repeats + 1):
            comm.Barrier()
            row = body()
            if i:
                rows.append(row)
        split = _cpu_split(cpu0, _cpu_times())
        keys = list(rows[0].keys())
        mine = {k: float(np.median([r[k] for r in rows])) for k in keys}
        every = comm.gather(mine, root=0)
        # each repeat's slowest rank (what a step waits for), key by key
        table = np.array([[r[k] for k in keys] for r in rows], np.float64)
        slowest = np.empty_like(table)
        comm.Reduce(table, slowest, op=MPI.MAX, root=0)
        if topo.rank:
            return {}
        return {"phase": name, "per_rank": every,
                "median": {k: float(np.median([e[k] for e in every])) for k in keys},
                "max": {k: float(np.max([e[k] for e in every])) for k in keys},
                "slowest": {k: [float(x) for x in slowest[:, i]] for i, k in enumerate(keys)},
                "cpu": split}

    def compute():
        c0 = time.process_time()
        wall = block.run()
        cpu = time.process_time() - c0
        return {"compute": wall, "cpu": cpu,
                "slowest": comm.allreduce(wall, op=MPI.MAX)}

    def sync():
        wall = block.run()
        t = time.perf_counter()
        C.wait([ring.start(small.copy())])
        return {"compute": wall, "wait": time.perf_counter() - t}

    def alone():
        t = time.perf_counter()
        C.wait([ring.start(small.copy())])
        return {"wait": time.perf_counter() - t}

    def traffic():
        buf = big.copy()
        op = ring.start(buf)
        wall = block.run(between=op.progress)
        t = time.perf_counter()
        C.wait([op])
        return {"compute": wall, "wait": time.perf_counter() - t,
                "sent": float(op.sent)}

    marks = {int(f * slices) for f in bucket_at}

    def buckets():
        ops = []
        done = [0]

        def between():
            done[0] += 1
            if done[0] in marks:
                ops.append(ring.start(small.copy()))
            C.poll(ops)
        wall = block.run(between=between)
        t = time.perf_counter()
        C.wait(ops)
        return {"compute": wall, "wait": time.perf_counter() - t}

    def chain():
        walls = 0.0
        t = time.perf_counter()
        for _ in range(chain_rounds):
            walls += short.run()
            C.wait([ring.start(small.copy())])
        total = time.perf_counter() - t
        return {"compute": walls / chain_rounds, "wait": (total - walls) / chain_rounds}

    phases = [phase("compute", compute), phase("sync_alone", alone), phase("sync", sync),
              phase("traffic", traffic), phase("buckets", buckets), phase("chain", chain)]
    return {"ranks": topo.size, "nodes": topo.nodes, "cores": os.cpu_count() or 1,
            "oversubscription": topo.size / float(os.cpu_count() or 1),
            "slices": slices, "repeats": repeats, "traffic_bytes": traffic_bytes,
            "chain_slices": chain_slices, "chain_rounds": chain_rounds,
            "sync_bytes": sync_bytes, "load": list(os.getloadavg()), "phases": phases}


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m dtnn.bench.oversub",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--slices", type=int, default=60)
    ap.add_argument("--traffic-bytes", type=int, default=4 << 20)
    ap.add_argument("--chain-slices", type=int, default=6,
                    help="slices of the short block before each round of the chain phase")
    ap.add_argument("--chain-rounds", type=int, default=6)
    ap.add_argument("--json", default="", help="append the result as one JSON line here")
    ap.add_argument("--label", default="")
    args = ap.parse_args(argv)
    from mpi4py import MPI
    from dtnn.threads import set_threads
    set_threads(1)
    comm = MPI.COMM_WORLD.Dup()
    try:
        res = run(comm, args.repeats, args.slices, args.traffic_bytes,
                  chain_slices=args.chain_slices, chain_rounds=args.chain_rounds)
    except BaseException:
        # a rank that fails must not leave the others blocked in a collective
        import traceback
        traceback.print_exc()
        MPI.COMM_WORLD.Abort(1)
        raise
    if comm.Get_rank() == 0:
        res["label"] = args.label
        res["time"] = time.strftime("%Y-%m-%d %H:%M:%S")
        for ph in res["phases"]:
            print(ph["phase"], {k: round(1e3 * v, 3) if k != "sent" else v
                                for k, v in ph["median"].items()},
                  {k: round(v, 3) for k, v in ph["cpu"].items() if v > 0.005}, flush=True)
        if args.json:
            from dtnn.io.jsonl import JsonlWriter   # h5py behind it: only when asked
            with JsonlWriter(args.json) as log:
                log.write(res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
