"""``dtnn info``: what this installation runs with.

Per compiled kernel, the instruction-set path that runs on this CPU (avx512 / avx2 /
generic, numpy for a twin, or what replaces it) and the compiled paths that cannot run
here; OpenMP, BLAS/OpenMP thread pools (threadpoolctl), MPI library and this process's
rank, and library versions.  Under ``mpiexec`` every rank prints one block (in rank
order).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from typing import Any, Dict, List


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
    import dtnn.rng  # noqa: F401  -- the counter-based generator's kernels
    try:
        import dtnn.compress  # noqa: F401
    except ImportError:
        pass
    from dtnn._kernels import isa
    ctx = get_context()
    threads = set_threads(default_threads(ctx.local_size))
    return {
        "dtnn": dtnn.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": {"model": isa.cpu_model(), "best_isa": isa.cpu(), "isa": isa.active(),
                "DTNN_ISA": isa.requested()},   # strict: a bad value is a one-line error
        "kernels": isa.kernel_report(),
        "openmp": _kernels.openmp_info(),
        "threads_per_process": threads,
        "thread_pools": thread_report(),
        "malloc": malloc_report(),
        "mpi": mpi_info(),
        "versions": {m: _version(m) for m in ("numpy", "torch", "h5py", "threadpoolctl", "tqdm")},
    }


def format_kernels(kernels: Dict[str, Dict[str, Any]]) -> List[str]:
    """One line per group of kernels with the same paths: what runs here, what is
    compiled and cannot run here (CPU), and what DTNN_ISA caps off."""
    groups: Dict[tuple, List[str]] = {}
    for name, k in sorted(kernels.items()):
        sig = (k["runs"], tuple(k["compiled"]), tuple(k["cannot_run"]), tuple(k["capped"]))
        groups.setdefault(sig, []).append(name)
    lines = [f"  {'runs here':<12} {'compiled paths':<22} kernels"]
    for (runs, compiled, off, capped), names in sorted(groups.items(),
                                                       key=lambda kv: kv[1][0]):
        paths = ",".join(compiled) or "-"
        notes = []
        if off:
            notes.append(f"cannot run on this CPU: {','.join(off)}")
        if capped:
            notes.append(f"capped off by DTNN_ISA: {','.join(capped)}")
        note = f"  [{'; '.join(notes)}]" if notes else ""
        lines.append(f"  {runs:<12} {paths:<22} {', '.join(names)}{note}")
    return lines


def format_info(info: Dict[str, Any]) -> str:
    lines = [f"dtnn {info['dtnn']} on Python {info['python']} ({info['platform']})"]
    cpu = info["cpu"]
    lines.append(f"CPU: {cpu['model']}; best ISA level {cpu['best_isa']}, kernels run at "
                 f"{cpu['isa']} (DTNN_ISA={cpu['DTNN_ISA']})")
    lines.append("kernels:")
    lines.extend(format_kernels(info["kernels"]))
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
