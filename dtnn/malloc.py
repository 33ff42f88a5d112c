"""Keep large buffers in the heap instead of fresh ``mmap`` pages.

glibc serves every allocation above its mmap threshold (128 KiB, adapting upwards only
after a free) with a new ``mmap`` and returns it with ``munmap`` on free.  A training
step allocates and frees activations, im2col columns and gradients of many MiB, so
each step touches fresh pages again, and in a virtual machine every 4 KiB page fault
is slow: a 16 MiB conv output cost torch's conv2d 46 ms instead of 30 ms (64->64@32,
batch 64, 1 thread, same process, measured on the dev VM).  Raising the mmap and trim
thresholds lets freed blocks be reused, which is what jemalloc/tcmalloc users get.

``DTNN_MALLOC=system`` leaves glibc's defaults alone.  Other C libraries: no-op.
"""
from __future__ import annotations

import ctypes
import os

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20   # glibc's largest accepted value on 64-bit
TRIM_THRESHOLD = 1 << 30    # keep up to 1 GiB of freed heap for reuse
TOP_PAD = 64 << 20          # grow the heap in 64 MiB steps (fewer brk calls)

_state = {"tuned": None}


def tune_malloc() -> bool:
    """Apply the thresholds once; True if glibc accepted them."""
    if _state["tuned"] is not None:
        return _state["tuned"]
    ok = False
    if os.environ.get("DTNN_MALLOC", "").strip().lower() != "system":
        mallopt = None
        # the running process already has libc loaded: look mallopt up there first
        # (ctypes.util.find_library runs ldconfig/gcc: up to a second of start-up)
        for name in (None, "libc.so.6"):
            try:
                mallopt = ctypes.CDLL(name).mallopt
                break
            except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS, Windows)
                continue
        if mallopt is not None:
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            ok = all(mallopt(p, v) == 1 for p, v in ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                                                     (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                                                     (_M_TOP_PAD, TOP_PAD)))
    _state["tuned"] = ok
    return ok


def malloc_report() -> str:
    """One line for ``dtnn info``."""
    if _state["tuned"]:
        return (f"glibc tuned: mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim threshold "
                f"{TRIM_THRESHOLD >> 20} MiB (DTNN_MALLOC=system to disable)")
    if os.environ.get("DTNN_MALLOC", "").strip().lower() == "system":
        return "system defaults (DTNN_MALLOC=system)"
    return "system defaults (not glibc, or mallopt refused)"
