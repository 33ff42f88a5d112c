"""Layout changes the convolution variants need, chosen by a BestOf.

``swap01_into(src, out)`` writes ``src`` (A, B, P) transposed to (B, A, P) into
``out`` -- e.g. a chunk's GEMM output (K, nb, Ho*Wo) into NCHW.  Two interchangeable
implementations race per (A, B, P, threads): numpy's strided copy and the parallel C
kernel (``dtnn._kernels._transpose``).  It is the non-convolution use of ``BestOf``:
same machinery, same cache and report (tuner "transpose").
"""
from __future__ import annotations

import numpy as np

import dtnn.tune as _tune
from dtnn.conv import kernels as K_


def _numpy(src, out):
    out[...] = src.transpose(1, 0, 2)


def _compiled(src, out):
    K_.compiled_swap01(src, out=out)


ALTERNATIVES = {"numpy": _numpy, "omp": _compiled}
_tuner = None


def swap01_into(src: np.ndarray, out: np.ndarray) -> None:
    global _tuner
    if _tuner is None or _tune._tuners.get("transpose") is not _tuner:
        # rank-local: it runs inside evaluation too, where ranks' call sequences differ
        _tuner = _tune.get_tuner("transpose", ALTERNATIVES, local=True, default="numpy",
                                 account=False)   # timed inside the conv tuner's calls
    if not (out.flags.c_contiguous and src.flags.c_contiguous):
        _numpy(src, out)
        return
    _tuner((src.shape, _tune.current_threads()), src, out)
