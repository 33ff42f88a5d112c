"""Does import order still matter?  Time torch's convolution right after a
multi-threaded numpy GEMM (where OpenBLAS workers that busy-wait steal the cores),
at 2 threads, in three fresh processes:

* ``dtnn-first``: ``import dtnn`` before numpy (OPENBLAS_THREAD_TIMEOUT set in time);
* ``numpy-first``: numpy imported first, threads set without dtnn (the old trap);
* ``numpy-first+init``: numpy first, then ``dtnn.init()`` (which makes OpenBLAS re-read
  its environment and restart its workers).

    python benchmarks/bench_import_order.py --reps 30 [--json out.jsonl]
"""
import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import os, sys, time
mode, reps = sys.argv[1], int(sys.argv[2])
os.environ.pop("OPENBLAS_THREAD_TIMEOUT", None)
if mode == "dtnn-first":
    import dtnn
import numpy as np
if mode == "numpy-first+init":
    import dtnn
    dtnn.init(threads=2, logging=False)
elif mode == "dtnn-first":
    dtnn.init(threads=2, logging=False)
else:
    from threadpoolctl import threadpool_limits
    threadpool_limits(2)
import torch
torch.set_num_threads(2)
a = np.random.rand(1024, 1024).astype(np.float32)
x = torch.randn(64, 64, 32, 32)
w = torch.randn(64, 64, 3, 3)
times = []
for i in range(reps + 3):
    a @ a                                   # OpenBLAS on 2 threads
    t0 = time.perf_counter()
    torch.nn.functional.conv2d(x, w, padding=1)
    if i >= 3:
        times.append(time.perf_counter() - t0)
times.sort()
print(times[len(times) // 2] * 1e3)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="append one JSON line here")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT",
                                                            "OMP_NUM_THREADS",
                                                            "OPENBLAS_NUM_THREADS")}
    modes = ["dtnn-first", "numpy-first", "numpy-first+init"]
    results = {m: [] for m in modes}
    for _ in range(args.rounds):                 # alternate the processes
        for mode in modes:
            out = subprocess.run([sys.executable, "-c", CHILD, mode, str(args.reps)],
                                 capture_output=True, text=True, env=env, check=True)
            results[mode].append(float(out.stdout.split()[-1]))
    row = {m: sorted(v)[len(v) // 2] for m, v in results.items()}
    for m in modes:
        print(f"{m:18s} torch conv after a 2-thread GEMM: median {row[m]:.2f} ms "
              f"(rounds {', '.join(f'{t:.2f}' for t in results[m])})")
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps({"median_ms": row, "rounds": results, "reps": args.reps}) + "\n")


if __name__ == "__main__":
    main()
