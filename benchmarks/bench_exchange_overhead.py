"""Overhead of dtnn's gradient exchange over a bare MPI_Allreduce of the same bytes.

No compute runs between the hooks, so what is timed is only the exchange machinery:
bucketing, posting, progress calls, waiting and the 1/size scaling, against one raw
``Allreduce(IN_PLACE)`` of the whole flat gradient followed by the same scaling.
Iterations alternate (reducer, raw, reducer, raw, ...) behind a barrier each, so load
on this shared machine hits both alike; medians are reported.

    mpiexec -n 2 python benchmarks/bench_exchange_overhead.py --model vgg11_bn --width 0.5
"""
from __future__ import annotations

import argparse
import json
import time

import dtnn  # noqa: F401  -- first: it sets OpenBLAS's spin time before numpy loads it
import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="simplecnn")
    ap.add_argument("--width", type=float, default=None)
    ap.add_argument("--iters", type=int, default=60)
    ap.add_argument("--modes", nargs="+", default=["blocking", "overlap"])
    ap.add_argument("--bucket-mb", type=float, default=4.0)
    ap.add_argument("--json", help="append one JSON line per mode here (rank 0)")
    args = ap.parse_args()

    from mpi4py import MPI
    from dtnn.parallel.options import DistOptions
    from dtnn.parallel.reducer import GradientReducer
    from dtnn.models import build_model
    from dtnn.threads import set_threads

    set_threads(1)
    comm = MPI.COMM_WORLD.Dup()
    opts = {} if args.width is None else {"width": args.width}
    model = build_model(args.model, (1, 28, 28), 10, **opts)
    grads = model.flat_grads
    rng = np.random.default_rng(comm.rank)
    size = comm.size
    scale = np.float32(1.0 / size)

    def raw():
        comm.Allreduce(MPI.IN_PLACE, grads, op=MPI.SUM)
        np.multiply(grads, scale, out=grads)

    for mode in args.modes:
        reducer = GradientReducer(comm, model, DistOptions(mode=mode, bucket_mb=args.bucket_mb,
                                                           average_buffers=False))

        def ours():
            reducer.start_step()
            for i in reversed(range(len(model.layers))):
                reducer.on_grads_ready(i)
            reducer.finish_step()

        times = {"dtnn": [], "raw": []}
        for it in range(args.iters + 5):
            for label, fn in (("dtnn", ours), ("raw", raw)):
                grads[...] = rng.standard_normal(grads.size, dtype=np.float32)
                comm.Barrier()
                t = time.perf_counter()
                fn()
                elapsed = comm.allreduce(time.perf_counter() - t, op=MPI.MAX)
                if it >= 5:
                    times[label].append(elapsed)
        med = {k: float(np.median(v)) for k, v in times.items()}
        row = {"model": args.model, "width": args.width, "ranks": size, "mode": mode,
               "bucket_mb": args.bucket_mb, "buckets": len(reducer.buckets)
               if hasattr(reducer, "buckets") else None,
               "MiB": grads.nbytes / 2**20, "dtnn_ms": med["dtnn"] * 1e3,
               "raw_allreduce_ms": med["raw"] * 1e3,
               "overhead": med["dtnn"] / med["raw"] - 1.0}
        if comm.rank == 0:
            print(json.dumps(row), flush=True)
            if args.json:
                with open(args.json, "a") as fh:
                    fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
