"""``dtnn bench collectives``: time each allreduce algorithm per message size.

Run under ``mpiexec`` (or ``launch/simcluster.sh run``).  For every size and
algorithm: one warm-up call, then ``repeats`` timed calls, each started after a
barrier and timed on the slowest rank.  ``mpi-blocking`` is a plain
``MPI_Allreduce``; the registered algorithms (``mpi`` = ``MPI_Iallreduce``,
``ring``, ...) run through the exchange's own wait.  The MPICH algorithm variables
in the environment are recorded with the results, so runs under different
``MPIR_CVAR_*ALLREDUCE*`` settings can be told apart.
"""
from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Sequence

import numpy as np


def _cvars() -> Dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("MPIR_CVAR") and
            "ALLREDUCE" in k}


def run(comm, sizes: Sequence[int], algorithms: Sequence[str], repeats: int = 5,
        node_comm=None) -> Dict[str, Any]:
    from mpi4py import MPI
    from dtnn.parallel import collectives as C
    topo = C.Topology(comm, node_comm)
    rows: List[Dict[str, Any]] = []
    for nbytes in sizes:
        n = max(1, int(nbytes) // 4)
        base = np.random.default_rng(topo.rank).standard_normal(n).astype(np.float32)
        want = np.empty_like(base)
        comm.Allreduce(base, want, op=MPI.SUM)
        for name in algorithms:
            algo = None if name == "mpi-blocking" else C.build(name, topo)
            times = []
            err = 0.0
            for i in range(repeats + 1):
                buf = base.copy()
                comm.Barrier()
                t = time.perf_counter()
                if algo is None:
                    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
                else:
                    C.wait([algo.start(buf)])
                dt = comm.allreduce(time.perf_counter() - t, op=MPI.MAX)
                if i:
                    times.append(dt)
                err = max(err, float(np.max(np.abs(buf - want))) /
                          max(1e-30, float(np.max(np.abs(want)))))
            p = topo.size
            busbw = 2 * (p - 1) / p * n * 4 * 8 / min(times) if p > 1 else 0.0
            rows.append({"algorithm": name, "bytes": n * 4, "times": times,
                         "best": min(times), "median": float(np.median(times)),
                         "busbw_bits": busbw, "max_rel_err": err})
    return {"ranks": topo.size, "nodes": topo.nodes, "local_size": topo.local_size,
            "cvars": _cvars(), "rows": rows}


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="dtnn bench collectives", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="65536,1048576,4194304,9437184",
                    help="message sizes in bytes, comma-separated")
    ap.add_argument("--algorithms", default="mpi-blocking,mpi,ring")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default="", help="append the result as one JSON line here")
    ap.add_argument("--label", default="")
    args = ap.parse_args(argv)
    from mpi4py import MPI
    comm = MPI.COMM_WORLD.Dup()
    res = run(comm, [int(s) for s in args.sizes.split(",")], args.algorithms.split(","),
              args.repeats)
    res["label"] = args.label
    if comm.Get_rank() == 0:
        for row in res["rows"]:
            print(f"{row['algorithm']:>14} {row['bytes']:>10} B  best {row['best']*1e3:8.1f} ms"
                  f"  median {row['median']*1e3:8.1f} ms  busbw {row['busbw_bits']/1e6:8.1f}"
                  f" Mbit/s  err {row['max_rel_err']:.1e}", flush=True)
        if args.json:
            from dtnn.io.jsonl import JsonlWriter   # h5py behind it: only when asked
            with JsonlWriter(args.json) as log:
                log.write(res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
