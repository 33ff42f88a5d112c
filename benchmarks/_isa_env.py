"""``--isa LEVEL`` for the benchmarks: measure the AVX2 (or generic) paths on a CPU that
has wider ones, with every library capped alike.

Import this module before dtnn, numpy and torch: the libraries read these variables
when they load.  ``--isa avx2`` caps dtnn's kernels (DTNN_ISA), numpy's OpenBLAS
(OPENBLAS_CORETYPE=Haswell), torch's oneDNN convolutions (ONEDNN_MAX_CPU_ISA), its
ATen kernels (ATEN_CPU_CAPABILITY) and MKL (MKL_ENABLE_INSTRUCTIONS) at AVX2 + FMA: the
instruction mix of an AVX2-only CPU, with this CPU's clock and caches (say so when
reporting).  ``--isa auto`` (default) changes nothing.

``describe()`` is the line every results file carries: the CPU model, its best ISA
level and the caps in force.
"""
from __future__ import annotations

import os
import sys

CAPS = {
    "auto": {},
    "avx512": {"DTNN_ISA": "avx512"},
    "avx2": {"DTNN_ISA": "avx2", "OPENBLAS_CORETYPE": "Haswell", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "generic": {"DTNN_ISA": "generic", "OPENBLAS_CORETYPE": "Nehalem",
                "ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default",
                "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}


def _from_argv(argv) -> str:
    for i, a in enumerate(argv):
        if a == "--isa" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--isa="):
            return a.split("=", 1)[1]
    return "auto"


LEVEL = _from_argv(sys.argv[1:])
if LEVEL not in CAPS:
    sys.exit(f"--isa must be one of {', '.join(CAPS)}, got {LEVEL!r}")
if LEVEL != "auto" and "numpy" in sys.modules:
    sys.exit("benchmarks/_isa_env.py must be imported before numpy")
os.environ.update(CAPS[LEVEL])


def add_argument(parser) -> None:
    parser.add_argument("--isa", choices=list(CAPS), default="auto",
                        help="cap dtnn, OpenBLAS, oneDNN and MKL at this ISA level "
                             "(e.g. measure the AVX2 paths on an AVX-512 CPU)")


def describe() -> str:
    """CPU model, best ISA, and the ISA the measured code ran with."""
    from dtnn._kernels import isa
    from dtnn._kernels.isa import cpu_model
    caps = ", ".join(f"{k}={v}" for k, v in CAPS[LEVEL].items())
    ran = isa.active()
    text = (f"CPU: {cpu_model()} ({os.cpu_count()} cores; best ISA "
            f"{isa.cpu()}); "
            f"dtnn kernels at {ran}")
    if caps:
        text += f"; libraries capped: {caps}"
    return text
