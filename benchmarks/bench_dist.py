#!/usr/bin/env python
"""Data-parallel scaling on this machine: ``dtnn bench dist`` under ``mpiexec -n N``
for several N, collected into one JSON + CSV and printed as a markdown table.

    python benchmarks/bench_dist.py                                # simplecnn, 1/2/4 ranks
    python benchmarks/bench_dist.py --ranks 1 2 --model vgg11_bn --input-shape 3,32,32 \
        --width 0.5 --batch 32 --steps 10 --tag vgg11_bn_w0.5
    python benchmarks/bench_dist.py --ranks 2 --variant "--bucket-mb 0" \
        --variant "--no-progress" --tag variants

Each (N, variant) is its own mpiexec job (threads per rank = cores / N unless
--threads).  Results go to benchmarks/results/dist_<tag>.json and .csv.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = ["model", "ranks", "variant", "mode", "threads_per_rank", "batch_per_rank",
           "global_batch", "samples_per_second", "speedup", "step_ms", "compute_ms", "comm_ms",
           "exposed_ms", "hook_mpi_ms", "raw_allreduce_ms", "exchange_overhead_ms",
           "buckets", "payload_MiB", "wire_MiB_estimate"]


def mpiexec() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else "mpiexec"


def run_one(n: int, common, variant: str, timeout: float):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    cmd = [mpiexec(), "-n", str(n), sys.executable, "-m", "dtnn", "bench", "dist",
           *common, *shlex.split(variant), "--json", out]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, timeout=timeout)
    with open(out) as fh:
        result = json.load(fh)
    os.remove(out)
    return cmd, result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--model", default="simplecnn")
    p.add_argument("--input-shape", default="1,28,28")
    p.add_argument("--width", type=float)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--variant", action="append", default=None,
                   help="extra 'dtnn bench dist' arguments; repeatable (default: none)")
    p.add_argument("--tag", default=None, help="results file name suffix")
    p.add_argument("--timeout", type=float, default=1800)
    args = p.parse_args(argv)

    common = ["--model", args.model, "--input-shape", args.input_shape, "--batch",
              str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    if args.width is not None:
        common += ["--width", str(args.width)]
    if args.threads:
        common += ["--threads", str(args.threads)]
    variants = args.variant or [""]
    rows, runs = [], []
    base_sps = None
    for n in args.ranks:
        for variant in variants:
            cmd, result = run_one(n, common, variant, args.timeout)
            runs.append({"command": cmd, "variant": variant, "result": result})
            for r in result["results"]:
                ms = lambda k: None if r.get(k) is None else round(1e3 * r[k], 3)  # noqa: E731
                if n == 1 and base_sps is None:
                    base_sps = r["samples_per_second"]
                overhead = None
                if r.get("exposed_comm_seconds") is not None and n > 1:
                    overhead = round(1e3 * (r["exposed_comm_seconds"] + r["hook_mpi_seconds"]
                                            - r["raw_allreduce_seconds"]), 3)
                rows.append({
                    "model": result["model"] + (f" w{args.width:g}" if args.width else ""),
                    "ranks": n, "variant": variant or "-", "mode": r["mode"],
                    "threads_per_rank": result["threads_per_rank"],
                    "batch_per_rank": r["batch_per_rank"], "global_batch": r["global_batch"],
                    "samples_per_second": round(r["samples_per_second"], 1),
                    "speedup": round(r["samples_per_second"] / base_sps, 2) if base_sps else None,
                    "step_ms": ms("step_seconds"), "compute_ms": ms("compute_seconds"),
                    "comm_ms": ms("comm_seconds"), "exposed_ms": ms("exposed_comm_seconds"),
                    "hook_mpi_ms": ms("hook_mpi_seconds"),
                    "raw_allreduce_ms": ms("raw_allreduce_seconds"),
                    "exchange_overhead_ms": overhead, "buckets": r.get("buckets", 0),
                    "payload_MiB": round(r.get("payload_bytes", 0) / 2**20, 3),
                    "wire_MiB_estimate": round(r.get("wire_bytes_estimate", 0) / 2**20, 3)})
    tag = args.tag or args.model
    out_dir = os.path.join(ROOT, "benchmarks", "results")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"dist_{tag}.json"), "w") as fh:
        json.dump({"rows": rows, "runs": runs}, fh, indent=1)
    with open(os.path.join(out_dir, f"dist_{tag}.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    print()
    print("| " + " | ".join(COLUMNS[1:]) + " |")
    print("|" + "---|" * (len(COLUMNS) - 1))
    for row in rows:
        print("| " + " | ".join("-" if row[c] is None else str(row[c]) for c in COLUMNS[1:]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
