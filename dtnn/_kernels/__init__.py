"""Compiled kernels and their numpy twins, behind one dispatching API.

Every kernel exists twice: a Cython/C version (``dtnn._kernels._<module>``, built by
setup.py from ``csrc/`` + ``.pyx``) and a pure-numpy twin in ``dtnn._kernels.twins``.
The twin is the test oracle and the fallback when the extension is not built.
``DTNN_KERNELS=numpy`` (or ``DTNN_ISA=numpy``) forces the twins (useful for debugging
and for tests).  Compiled kernels pick an instruction-set path at run time
(``dtnn._kernels.isa``: AVX-512 / AVX2 / generic, capped by ``DTNN_ISA``).

Callers import the functions from here, never from the submodules::

    from dtnn._kernels import im2col, col2im
"""
from __future__ import annotations

import importlib
from typing import Callable, Dict

from dtnn._kernels import twins

#: kernel name -> compiled module that provides it
_COMPILED_MODULES = {
    "im2col": "dtnn._kernels._im2col",
    "col2im": "dtnn._kernels._im2col",
    "maxpool_forward": "dtnn._kernels._pool",
    "maxpool_backward": "dtnn._kernels._pool",
    "bn_stats": "dtnn._kernels._bnact",
    "bn_apply": "dtnn._kernels._bnact",
    "bn_backward": "dtnn._kernels._bnact",
    "bn_apply_relu": "dtnn._kernels._bnact",
    "bn_relu_backward": "dtnn._kernels._bnact",
    "bn_apply_relu_pool2": "dtnn._kernels._bnact",
    "bn_relu_pool2_backward": "dtnn._kernels._bnact",
    "prelu_forward": "dtnn._kernels._bnact",
    "prelu_backward": "dtnn._kernels._bnact",
    "relu_forward": "dtnn._kernels._bnact",
    "relu_backward": "dtnn._kernels._bnact",
    "channel_sum": "dtnn._kernels._bnact",
}

_active: Dict[str, str] = {}
_modules: Dict[str, str] = {}
_import_errors: Dict[str, str] = {}


def _twins_forced() -> bool:
    from dtnn._kernels.isa import requested
    return requested(strict=False) == "numpy"


def resolve(name: str, compiled_module: str, twin_module) -> Callable:
    """The compiled kernel ``name`` from ``compiled_module``, or the function of the
    same name in ``twin_module`` when the extension is missing or DTNN_KERNELS=numpy.
    Subsystems (compression, convolution variants) call this for their own kernels, so
    ``active()`` and ``dtnn info`` list every kernel in the package."""
    _modules[name] = compiled_module
    if not _twins_forced():
        try:
            fn = getattr(importlib.import_module(compiled_module), name)
            _active[name] = "compiled"
            return fn
        except (ImportError, AttributeError) as exc:
            _import_errors[name] = str(exc)
    _active[name] = "numpy"
    return getattr(twin_module, name)


def _resolve(name: str) -> Callable:
    return resolve(name, _COMPILED_MODULES[name], twins)


def active() -> Dict[str, str]:
    """Which implementation each kernel uses: 'compiled' or 'numpy' (which ISA path a
    compiled one takes: ``dtnn._kernels.isa.kernel_report()``)."""
    return dict(_active)


def modules() -> Dict[str, str]:
    """Kernel name -> the compiled module that provides it."""
    return dict(_modules)


def openmp_info() -> Dict[str, object]:
    """Whether the compiled extensions were built with OpenMP, and its max threads."""
    try:
        mod = importlib.import_module("dtnn._kernels._im2col")
        return {"openmp": bool(mod.openmp_enabled()), "max_threads": int(mod.openmp_max_threads())}
    except (ImportError, AttributeError):
        return {"openmp": False, "max_threads": 1}


im2col = _resolve("im2col")
col2im = _resolve("col2im")
maxpool_forward = _resolve("maxpool_forward")
maxpool_backward = _resolve("maxpool_backward")
bn_stats = _resolve("bn_stats")
bn_apply = _resolve("bn_apply")
bn_backward = _resolve("bn_backward")
bn_apply_relu = _resolve("bn_apply_relu")
bn_relu_backward = _resolve("bn_relu_backward")
bn_apply_relu_pool2 = _resolve("bn_apply_relu_pool2")
bn_relu_pool2_backward = _resolve("bn_relu_pool2_backward")
prelu_forward = _resolve("prelu_forward")
prelu_backward = _resolve("prelu_backward")
relu_forward = _resolve("relu_forward")
relu_backward = _resolve("relu_backward")
channel_sum = _resolve("channel_sum")
