"""``dtnn info``: what this installation runs with.

Compiled kernels vs numpy twins, OpenMP, BLAS/OpenMP thread pools (threadpoolctl),
MPI library and this process's rank, and library versions.  Under ``mpiexec`` every
rank prints one block (in rank order).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from typing import Any, Dict


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _version(module: str) -> str:
    """The installed version, read from the package metadata: importing torch only to
    print its version cost seconds of start-up."""
    from importlib import metadata
    mod = sys.modules.get(module)
    if mod is not None and getattr(mod, "__version__", None):
        return str(mod.__version__)
    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        pass
    try:
        mod = __import__(module)
        return getattr(mod, "__version__", "?")
    except ImportError:
        return "not installed"


def mpi_info() -> Dict[str, Any]:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        return {"available": False, "error": str(exc)}
    comm = MPI.COMM_WORLD
    return {"available": True, "mpi4py": _version("mpi4py"),
            "vendor": "%s %s" % (MPI.get_vendor()[0], ".".join(map(str, MPI.get_vendor()[1]))),
            "library": MPI.Get_library_version().strip().splitlines()[0],
            "standard": "%d.%d" % MPI.Get_version(), "rank": comm.Get_rank(),
            "size": comm.Get_size(), "host": MPI.Get_processor_name()}


def collect() -> Dict[str, Any]:
    import dtnn
    from dtnn import _kernels
    from dtnn.parallel import get_context
    from dtnn.malloc import malloc_report
    from dtnn.threads import default_threads, set_threads, thread_report

    import dtnn.conv  # noqa: F401  -- variants resolve their kernels on import
    try:
        import dtnn.compress  # noqa: F401
    except ImportError:
        pass
    ctx = get_context()
    threads = set_threads(default_threads(ctx.local_size))
    return {
        "dtnn": dtnn.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kernels": _kernels.active(),
        "openmp": _kernels.openmp_info(),
        "threads_per_process": threads,
        "thread_pools": thread_report(),
        "malloc": malloc_report(),
        "mpi": mpi_info(),
        "versions": {m: _version(m) for m in ("numpy", "torch", "h5py", "threadpoolctl", "tqdm")},
    }


def format_info(info: Dict[str, Any]) -> str:
    lines = [f"dtnn {info['dtnn']} on Python {info['python']} ({info['platform']})"]
    kernels = ", ".join(f"{k}={v}" for k, v in sorted(info["kernels"].items()))
    lines.append(f"kernels: {kernels}")
    omp = info["openmp"]
    lines.append(f"OpenMP: {'on' if omp['openmp'] else 'off'} (max threads {omp['max_threads']})")
    lines.append(f"threads per process: {info['threads_per_process']}")
    for pool in info["thread_pools"]:
        lines.append(f"  {pool['api']:<6} {pool['library']:<10} threads={pool['threads']} "
                     f"version={pool['version']}")
    lines.append(f"malloc: {info['malloc']}")
    mpi = info["mpi"]
    if mpi["available"]:
        lines.append(f"MPI: {mpi['library']} (mpi4py {mpi['mpi4py']}, MPI {mpi['standard']}); "
                     f"rank {mpi['rank']} of {mpi['size']} on {mpi['host']}")
    else:
        lines.append(f"MPI: not available ({mpi['error']})")
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    return "\n".join(lines)


def run(args) -> int:
    from dtnn.parallel.info import rank_ordered_output
    info = collect()
    text = rank_ordered_output(json.dumps(info) if args.json else format_info(info),
                               as_json=args.json)
    if text is not None:  # rank 0 prints every rank's block, in rank order
        sys.stdout.write(text + "\n")
    return 0
