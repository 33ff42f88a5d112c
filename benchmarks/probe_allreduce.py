"""Time MPI's allreduce of one gradient's size, blocking and non-blocking, as the
library is configured (pick MPICH's algorithm with -genv MPIR_CVAR_ALLREDUCE_INTRA_ALGORITHM
/ MPIR_CVAR_IALLREDUCE_INTRA_ALGORITHM), and gloo's all_reduce on the same ranks::

    launch/simcluster.sh run -- -n 4 -genv MPIR_CVAR_ALLREDUCE_INTRA_ALGORITHM ring \\
        .venv/bin/python benchmarks/probe_allreduce.py --mb 9.08 --calls 5

Rank 0 prints one JSON line: median seconds per call and the bus bandwidth
2 (p-1)/p x bytes / time.
"""
import argparse
import json
import os
import sys
import time

import numpy as np


def timed(fn, calls, comm):
    out = []
    for _ in range(calls + 1):
        comm.Barrier()
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return float(comm.allreduce(np.median(out[1:]), op=__import__("mpi4py.MPI").MPI.MAX))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=9.08, help="MiB per allreduce")
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--gloo", action="store_true", help="also time torch gloo all_reduce")
    args = ap.parse_args()
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    p = comm.size
    n = int(args.mb * (1 << 20)) // 4
    buf = np.ones(n, np.float32)
    res = {"ranks": p, "bytes": buf.nbytes,
           "allreduce_algorithm": os.environ.get("MPIR_CVAR_ALLREDUCE_INTRA_ALGORITHM", "auto"),
           "iallreduce_algorithm": os.environ.get("MPIR_CVAR_IALLREDUCE_INTRA_ALGORITHM",
                                                  "auto")}
    res["allreduce_s"] = timed(lambda: comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM),
                               args.calls, comm)
    res["iallreduce_wait_s"] = timed(
        lambda: comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM).Wait(), args.calls, comm)
    if args.gloo:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import torch
        import torch.distributed as dist
        import ddp_peer
        ns = argparse.Namespace(iface=None, bench=True, modes=["none"])
        ddp_peer.init_gloo(comm, ns, lambda m: None)
        t = torch.ones(n)
        res["gloo_allreduce_s"] = timed(lambda: dist.all_reduce(t), args.calls, comm)
        dist.destroy_process_group()
    for k in [k for k in res if k.endswith("_s")]:
        res[k.replace("_s", "_mbit_per_s")] = 2 * (p - 1) / p * buf.nbytes * 8 / res[k] / 1e6
    if comm.rank == 0:
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
