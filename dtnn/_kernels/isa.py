"""Which instruction set the compiled kernels run with, and the per-kernel truth for
``dtnn info``.

The extensions are built for the baseline x86-64 ISA and carry hand-vectorised AVX2
and AVX-512 paths where they pay (csrc/dtnn_isa.h); each module picks one at run time:
the best this CPU runs, capped by ``DTNN_ISA``:

    DTNN_ISA=auto     (default) the best path the CPU runs
    DTNN_ISA=avx2     no AVX-512 path (on an AVX-512 CPU: test and measure the AVX2 one)
    DTNN_ISA=generic  the baseline build only (the fused im2col kernels then give way to
                      unfold + GEMM)
    DTNN_ISA=numpy    the numpy twins instead of the compiled kernels (= DTNN_KERNELS=numpy)

``capped(level)`` changes the cap of every loaded module for a block of code (tests,
benchmarks); the environment variable also reaches MPI ranks and subprocesses.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import platform
import warnings
from typing import Dict, Iterator, List, Optional

from dtnn.errors import ConfigError

#: ISA levels, lowest first (the numbers of csrc/dtnn_isa.h)
LEVELS = ("generic", "avx2", "avx512")
CHOICES = ("auto",) + tuple(reversed(LEVELS)) + ("numpy",)
#: the compiled modules that dispatch on the ISA level (each links csrc/isa.c)
ISA_MODULES = ("dtnn._kernels._im2col", "dtnn._kernels._winograd", "dtnn._kernels._direct",
               "dtnn._kernels._compress", "dtnn._kernels._infer", "dtnn._kernels._fused")


def cpu_model() -> str:
    """The CPU's model name with vendor, family and model numbers (/proc/cpuinfo), e.g.
    'Intel(R) Xeon(R) Processor, GenuineIntel family 6 model 167': every result must say
    which CPU it was measured on, and in a VM the name alone often does not."""
    fields: Dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    break                       # the first processor is enough
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields:
        name += (f", {fields.get('vendor_id', '?')} family {fields['cpu family']} "
                 f"model {fields.get('model', '?')}")
    return name


def requested(strict: bool = True) -> str:
    """$DTNN_ISA (``auto`` when unset); ``numpy`` also when DTNN_KERNELS=numpy.  A value
    that is not one of CHOICES raises ConfigError (``dtnn info`` reports it in one line);
    with ``strict=False`` it warns once and counts as ``auto``, like the C side does."""
    raw = os.environ.get("DTNN_ISA", "")
    value = raw or "auto"
    if value not in CHOICES:
        msg = f"DTNN_ISA={raw!r} is not one of {', '.join(CHOICES)}"
        if strict:
            raise ConfigError(msg)
        if not _warned:
            _warned.append(True)
            warnings.warn(msg + "; ignored", stacklevel=3)
        value = "auto"
    if os.environ.get("DTNN_KERNELS", "").lower() == "numpy":
        return "numpy"
    return value


_warned: List[bool] = []


def _modules() -> List[object]:
    mods = []
    for name in ISA_MODULES:
        try:
            mods.append(importlib.import_module(name))
        except ImportError:
            pass
    return mods


def _cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu() -> str:
    """The best level this CPU runs (asked from a compiled module; /proc/cpuinfo when
    none is built)."""
    for mod in _modules():
        return LEVELS[int(mod.isa_cpu())]
    flags = _cpu_flags()
    if {"avx2", "fma", "f16c"} <= flags:
        return "avx512" if "avx512f" in flags else "avx2"
    return "generic"


def active() -> str:
    """The level the compiled kernels use now ('numpy' when the twins are forced)."""
    if requested(strict=False) == "numpy":
        return "numpy"
    for mod in _modules():
        return LEVELS[int(mod.isa_active())]
    return "numpy"      # nothing compiled: every kernel is its numpy twin


_current: List[str] = []


def current() -> str:
    """``active()``, cached (it is part of every tuning key); set_cap updates it."""
    if not _current:
        _current.append(active())
    return _current[0]


def set_cap(level: Optional[str]) -> None:
    """Cap every module at ``level`` ('avx512', 'avx2', 'generic'); None: back to
    $DTNN_ISA."""
    code = -1 if level is None else LEVELS.index(level)
    for mod in _modules():
        mod.set_isa_cap(code)
    _current[:] = [active()]


@contextlib.contextmanager
def capped(level: str) -> Iterator[None]:
    """Run a block with the kernels capped at ``level`` (then back to $DTNN_ISA)."""
    set_cap(level)
    try:
        yield
    finally:
        set_cap(None)


def runnable(paths: List[str], level: str) -> List[str]:
    """The paths among ``paths`` that run at ``level``, best first."""
    if level == "numpy":
        return []
    top = LEVELS.index(level)
    return sorted((p for p in paths if LEVELS.index(p) <= top), key=LEVELS.index, reverse=True)


#: what runs instead when none of a kernel's compiled paths can run here
FALLBACKS = {"fused_forward": "unfold+GEMM", "fused_backward_data": "unfold+GEMM",
             "fused_backward_weights": "unfold+GEMM"}


def kernel_report() -> Dict[str, Dict[str, object]]:
    """Per kernel: ``runs`` (the path that runs here: avx512 / avx2 / generic / numpy,
    or what replaces the kernel when none of its paths can), ``compiled`` (paths in
    this build) and ``cannot_run`` (compiled paths this CPU, or the DTNN_ISA cap,
    rules out)."""
    from dtnn import _kernels
    cpu_level = cpu()
    level = active()
    report: Dict[str, Dict[str, object]] = {}
    paths_of: Dict[str, List[str]] = {}
    for mod_name in set(_kernels.modules().values()):
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue      # not built: its kernels are numpy twins only
        listed = mod.isa_paths() if hasattr(mod, "isa_paths") else {}
        for name, m in _kernels.modules().items():
            if m == mod_name and hasattr(mod, name):
                paths_of[name] = list(listed.get(name, ["generic"]))
    for name in sorted(_kernels.active()):
        compiled = paths_of.get(name, [])
        ok = runnable(compiled, level)
        if _kernels.active()[name] != "compiled":
            runs = "numpy"
        else:
            runs = ok[0] if ok else FALLBACKS.get(name, "numpy")
        off = [p for p in compiled if LEVELS.index(p) > LEVELS.index(cpu_level)]
        report[name] = {"runs": runs, "compiled": compiled, "cannot_run": off,
                        "capped": [p for p in compiled if p not in off and p not in ok]}
    return report
