#!/usr/bin/env python
"""Throughput of the compression kernels: compiled (csrc/compress.c) vs numpy twin,
on n float32 gradient elements, with 1 and 2 OpenMP threads, against a memory copy
of the same fp32 buffer measured in the same run.

    python benchmarks/bench_compress_kernels.py --sizes 1000000 25000000 --threads 1 2

GB/s is of the fp32 gradient processed (4 n bytes, also for kernels whose input is
the 2-byte/1-byte payload: decoders produce 4 n bytes), so every row reads as "how
fast can a gradient of this size pass through this step".  ``vs copy`` = kernel GB/s
/ copy GB/s (copy = ``np.copyto`` of 4 n bytes, best of the same repeats, same
thread count: numpy's copy is single-threaded).  Times are the best of ``--repeat``
runs.  The twin is numpy (single-threaded) and is timed once per size (same repeats).

The memory bound: ``B/elem`` is the memory traffic of a kernel per gradient element
(bytes read + written, e.g. add_l1 reads x and e and writes e: 12 B; a copy is 8 B;
the sparse kernels' random accesses count 4 B each, not the cache lines they touch).
``copy-bound speed-up`` = (copy traffic rate / B/elem) / twin elements per second,
the copy traffic rate being 8 n bytes / copy time of the same run: the largest
speed-up over the twin a kernel moving its bytes at copy speed can show.  ``traffic
vs copy`` = the compiled kernel's traffic rate (B/elem per element time) / the copy
traffic rate: near 1 (or above) the kernel is memory-bound, well below 1 it computes.  Below 10
it says numpy is already within 10x of that bound.  It is a bound only as far as the
copy is (kernels that only read, or write less, can stream faster than
``np.copyto``, and 2 threads can exceed a one-thread copy).
Results: benchmarks/results/compress_kernels.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def best(fn, repeat):
    fn()  # warm up (page faults, lazy allocation)
    t = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def cases(mod, n):
    """name -> (zero-arg callable, streaming?) for module ``mod`` (compiled or twin)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(np.float32)
    e = (0.1 * rng.standard_normal(n)).astype(np.float32)
    out = np.zeros(n, np.float32)
    h = x.astype(np.float16).view(np.uint16)
    hb = np.empty(n, np.uint16)
    q = np.empty(n, np.int8)
    chunk = 512
    norms = mod.chunk_norms(x, chunk, "l2")
    scale1 = np.array([np.abs(x).max()], np.float32)
    packed_t = np.empty((n + 3) // 4, np.uint8)
    bits = np.empty((n + 7) // 8, np.uint8)
    k = max(1, n // 100)
    idx, val = np.empty(k, np.int32), np.empty(k, np.float32)
    ridx = np.sort(rng.choice(n, k, replace=False)).astype(np.int32)
    ef = e.copy()
    tmax = mod.chunk_norms(x, chunk, "max")
    svals = (mod.chunk_norms(x, chunk, "l1") / chunk).astype(np.float32)
    return {
        "copy (np.copyto)": (lambda: np.copyto(out, x), True),
        "f32_to_f16 (scale)": (lambda: mod.f32_to_f16(x, 0.25, hb), True),
        "f16_to_f32 (accumulate)": (lambda: mod.f16_to_f32(h, 0.25, out, True), True),
        "f32_to_bf16": (lambda: mod.f32_to_bf16(x, 1.0, hb), True),
        "chunk_norms l2/512": (lambda: mod.chunk_norms(x, chunk, "l2"), True),
        "chunk_norms max (int8 scale)": (lambda: mod.chunk_norms(x, n, "max"), True),
        "quantize_i8 int8 (stochastic)": (
            lambda: mod.quantize_i8(x, n, scale1, 127.0, 7, True, q), True),
        "quantize_i8 qsgd/512 (stochastic)": (
            lambda: mod.quantize_i8(x, chunk, norms, 127.0, 7, True, q), True),
        "dequantize_i8 (accumulate)": (
            lambda: mod.dequantize_i8(q, chunk, norms, 127.0, 0.25, out, True), True),
        "terngrad_quantize /512": (
            lambda: mod.terngrad_quantize(x, tmax, chunk, 7, packed_t), True),
        "terngrad_dequantize /512 (accumulate)": (
            lambda: mod.terngrad_dequantize(packed_t, n, tmax, chunk, 0.25, out, True), True),
        "add_l1 (EF: e += x, sum |e|)": (lambda: mod.add_l1(x, ef), True),
        "sign_pack /512 (EF: bits, e -= s*sign)": (
            lambda: mod.sign_pack(ef, svals, chunk, True, bits), True),
        "sign_unpack /512 (accumulate)": (
            lambda: mod.sign_unpack(bits, n, svals, chunk, 0.25, out, True), True),
        "topk 1% (EF fused)": (lambda: mod.topk(ef, k, x, True, idx, val), False),
        "scatter_add 1%": (lambda: mod.scatter_add(ridx, val, 0.25, out), False),
        "gather 1% (EF: e += x, take, clear)": (lambda: mod.gather(ef, ridx, x, True, val), False),
    }


#: memory traffic per fp32 element (bytes read + written) of each case; k / n = 1 %
_SPARSE = 0.01
BYTES_PER_ELEM = {
    "copy (np.copyto)": 8.0,
    "f32_to_f16 (scale)": 4 + 2,
    "f16_to_f32 (accumulate)": 2 + 4 + 4,
    "f32_to_bf16": 4 + 2,
    "chunk_norms l2/512": 4.0,
    "chunk_norms max (int8 scale)": 4.0,
    "quantize_i8 int8 (stochastic)": 4 + 1,
    "quantize_i8 qsgd/512 (stochastic)": 4 + 1,
    "dequantize_i8 (accumulate)": 1 + 4 + 4,
    "terngrad_quantize /512": 4 + 0.25,
    "terngrad_dequantize /512 (accumulate)": 0.25 + 4 + 4,
    "add_l1 (EF: e += x, sum |e|)": 4 + 4 + 4,
    "sign_pack /512 (EF: bits, e -= s*sign)": 4 + 0.125 + 4,
    "sign_unpack /512 (accumulate)": 0.125 + 4 + 4,
    # x, e read and e written; idx and val (4 B each) for 1 % of the elements
    "topk 1% (EF fused)": 12 + 8 * _SPARSE,
    # idx, val read; out[idx] read and written (4 B each; the cache lines they sit in
    # are not counted, so for the sparse kernels this is an optimistic bound)
    "scatter_add 1%": 16 * _SPARSE,
    "gather 1% (EF: e += x, take, clear)": 12 + 8 * _SPARSE,
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 25_000_000])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "compress_kernels"))
    args = p.parse_args(argv)

    from threadpoolctl import threadpool_limits

    from dtnn._kernels import _compress as compiled
    from dtnn.compress import twins

    rows = []
    for n in args.sizes:
        gb = 4 * n / 1e9
        rep = args.repeat if n <= 2_000_000 else max(2, args.repeat // 2)
        twin_cases = cases(twins, n)
        twin_t = {name: best(fn, rep) for name, (fn, _) in twin_cases.items()}
        del twin_cases
        for th in args.threads:
            with threadpool_limits(limits=th, user_api="openmp"):
                comp_cases = cases(compiled, n)
                comp_t = {name: best(fn, rep) for name, (fn, _) in comp_cases.items()}
                streaming = {name: s for name, (_, s) in comp_cases.items()}
                del comp_cases
            copy_s = comp_t["copy (np.copyto)"]
            copy_gbs = gb / copy_s
            for name, t in comp_t.items():
                bpe = BYTES_PER_ELEM[name]
                # (8 n / copy_s / bpe) elements/s at copy traffic rate over n / twin_s
                bound = (8.0 / bpe) * twin_t[name] / copy_s
                rows.append({"kernel": name, "n": n, "threads": th, "compiled_s": t,
                             "twin_s": twin_t[name], "compiled_GBps": gb / t,
                             "twin_GBps": gb / twin_t[name], "speedup": twin_t[name] / t,
                             "vs_copy": (gb / t) / copy_gbs, "streaming": streaming[name],
                             "bytes_per_elem": bpe, "copy_bound_speedup": bound,
                             "traffic_vs_copy": (gb / t) / copy_gbs * bpe / 8.0})
            print(f"n={n:,} threads={th}: copy {copy_gbs:.1f} GB/s", flush=True)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared: other jobs ran "
             f"during the measurement; load average {load:.2f} at the end). Command: "
             f"`python benchmarks/bench_compress_kernels.py "
             f"--sizes {' '.join(map(str, args.sizes))} --threads "
             f"{' '.join(map(str, args.threads))} --repeat {args.repeat}`", "",
             "B/elem: memory traffic per element; copy-bound speed-up: the largest "
             "speed-up over the twin at copy traffic rate; traffic vs copy: the compiled "
             "kernel's traffic rate / the copy's (see the script's docstring).", ""]
    for n in args.sizes:
        for th in args.threads:
            sel = [r for r in rows if r["n"] == n and r["threads"] == th]
            lines += [f"### n = {n:,} floats ({4 * n / 1e6:.0f} MB fp32), {th} thread(s)", "",
                      "| kernel | compiled GB/s | numpy twin GB/s | speedup | compiled / copy "
                      "| B/elem | copy-bound speed-up | traffic vs copy |",
                      "|---|---|---|---|---|---|---|---|"]
            for r in sel:
                lines.append(f"| {r['kernel']} | {r['compiled_GBps']:.2f} | {r['twin_GBps']:.2f} "
                             f"| {r['speedup']:.1f}x | {r['vs_copy']:.2f} "
                             f"| {r['bytes_per_elem']:g} | {r['copy_bound_speedup']:.1f}x "
                             f"| {r['traffic_vs_copy']:.2f} |")
            lines.append("")
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as fh:
        json.dump({"argv": sys.argv, "load_average": load, "rows": rows}, fh, indent=1)
    with open(args.out + ".md", "w") as fh:
        fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
