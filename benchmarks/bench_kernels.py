"""Time the compiled kernels against their numpy twins on one thread.

Usage:  python benchmarks/bench_kernels.py [--repeat 5] [--out benchmarks/results/kernels.md]

Each entry is the best of ``--repeat`` rounds (a round runs the kernel enough times
to last ~50 ms).  Both versions write into preallocated ``out=`` buffers where the
API has one (im2col, col2im, maxpool_backward), so page faults of fresh allocations
do not hide the kernel time; maxpool_forward allocates its outputs.  Results go to stdout and,
as a markdown table with the command that produced it, to ``--out``.
"""
from __future__ import annotations

import os

# One thread everywhere, set before numpy / the kernels load their runtimes.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import dtnn  # noqa: F401,E402  -- first: it sets OpenBLAS's spin time before numpy loads it
import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from dtnn._kernels import twins  # noqa: E402
from dtnn._kernels.isa import cpu_model  # noqa: E402

try:
    from dtnn._kernels import _im2col, _pool
except ImportError:  # pragma: no cover
    sys.exit("compiled kernels not built: run `pip install -e .` first")

# (label, N, C, H, W, R, S, stride, pad) -- conv layers as seen by one batch chunk of 8
CONV_SHAPES = [
    ("64->64 @32x32, 3x3 pad1", 8, 64, 32, 32, 3, 3, 1, 1),
    ("1->32 @28x28, 3x3 pad1", 8, 1, 28, 28, 3, 3, 1, 1),
    ("32->64 @14x14, 3x3 pad1", 8, 32, 14, 14, 3, 3, 1, 1),
    ("64->128 @16x16, 3x3 s2 pad1", 8, 64, 16, 16, 3, 3, 2, 1),
]
# (label, N, C, H, W, R, S, stride, pad)
POOL_SHAPES = [
    ("64 @32x32, 2x2 s2", 8, 64, 32, 32, 2, 2, 2, 0),
    ("32 @28x28, 2x2 s2", 8, 32, 28, 28, 2, 2, 2, 0),
    ("64 @32x32, 3x3 s2 pad1", 8, 64, 32, 32, 3, 3, 2, 1),
]


def best_time(fn, repeat: int, min_round: float = 0.05) -> float:
    """Best per-call time in seconds over ``repeat`` rounds."""
    fn()  # warm-up (page faults, lazy init)
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_round or number >= 1 << 16:
            break
        number *= 2
    best = dt / number
    for _ in range(repeat - 1):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def run(repeat: int):
    rng = np.random.default_rng(0)
    rows = []
    for label, N, C, H, W, R, S, st, pd in CONV_SHAPES:
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        geo = (R, S, st, st, pd, pd, 1, 1)
        col = twins.im2col(x, *geo)
        assert np.array_equal(col, _im2col.im2col(x, *geo))
        col_buf, x_buf = np.empty_like(col), np.empty_like(x)
        for name, twin, comp in [
            ("im2col", lambda: twins.im2col(x, *geo, out=col_buf),
             lambda: _im2col.im2col(x, *geo, out=col_buf)),
            ("col2im", lambda: twins.col2im(col, N, C, H, W, *geo, out=x_buf),
             lambda: _im2col.col2im(col, N, C, H, W, *geo, out=x_buf)),
        ]:
            rows.append((name, f"{label} (N={N})", best_time(twin, repeat),
                         best_time(comp, repeat)))
    for label, N, C, H, W, R, S, st, pd in POOL_SHAPES:
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        geo = (R, S, st, st, pd, pd)
        y, arg = _pool.maxpool_forward(x, *geo)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx_buf = np.empty_like(x)
        rows.append(("maxpool_forward", f"{label} (N={N})",
                     best_time(lambda: twins.maxpool_forward(x, *geo), repeat),
                     best_time(lambda: _pool.maxpool_forward(x, *geo), repeat)))
        rows.append(("maxpool_backward", f"{label} (N={N})",
                     best_time(lambda: twins.maxpool_backward(dy, arg, H, W, out=dx_buf), repeat),
                     best_time(lambda: _pool.maxpool_backward(dy, arg, H, W, out=dx_buf),
                               repeat)))
    return rows


def table(rows) -> str:
    lines = ["| kernel | shape | numpy twin (ms) | compiled (ms) | speed-up |",
             "|---|---|---:|---:|---:|"]
    for name, label, t_twin, t_comp in rows:
        lines.append(f"| {name} | {label} | {t_twin * 1e3:.3f} | {t_comp * 1e3:.3f} "
                     f"| {t_twin / t_comp:.1f}x |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "kernels.md"))
    args = ap.parse_args(argv)

    with threadpool_limits(limits=1):
        threads = _im2col.openmp_max_threads()
        rows = run(args.repeat)
    md = table(rows)
    print(md)

    cmd = "python benchmarks/bench_kernels.py" + (
        f" --repeat {args.repeat}" if args.repeat != 5 else "")
    header = [
        "# Compiled kernels vs numpy twins (1 thread)",
        "",
        f"Command: `{cmd}` (the script sets OMP/BLAS threads to 1 itself and limits",
        "them with threadpoolctl).",
        "",
        f"- CPU: {cpu_model()}",
        f"- Python {platform.python_version()}, numpy {np.__version__}",
        f"- kernels built with OpenMP: {_im2col.openmp_enabled()} "
        f"(threads used: {threads})",
        f"- time per call, best of {args.repeat} rounds; both versions write into "
        "preallocated `out=` buffers (maxpool_forward allocates)",
        f"- date: {time.strftime('%Y-%m-%d')}",
        "",
    ]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write("\n".join(header) + "\n" + md + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
