"""Binding a fused plan (``dtnn.infer.steps``) to a batch size, and running it.

``bind(steps, N)`` turns every step into an op of the compiled executor
(``dtnn._kernels._infer``): packed filters, output buffers and workspaces allocated
once, so a batch-1 call costs its arithmetic plus a few tens of nanoseconds per step
instead of a Python layer call, argument checks and numpy temporaries.  Without the
extension (or with ``DTNN_KERNELS=numpy``) the same steps run on the numpy twins of the
kernels (``dtnn.infer.kernels``): same results up to rounding, slowly.

Which kernel computes a convolution:

* ``px``   the pixel-vectorised direct kernel (stride 1; most layers of a pruned net),
* ``ch``   the channel-vectorised direct kernel (any stride; tiny images, dense layers),
* ``gemm`` dtnn's im2col + GEMM convolution on the folded weights, then the activation
           in place (wide layers at large batches, where BLAS wins).

``kernel="auto"`` times the candidates on the bound shape once, at bind time, and keeps
the fastest (a few milliseconds per layer); ``"heuristic"`` picks without timing (tests,
or where timing noise is unwanted); naming a kernel forces it wherever it applies.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional

import numpy as np

from dtnn.infer import kernels as K
from dtnn.infer.steps import (AffineStep, BlockStep, ConvStep, LayerStep, PoolStep,
                              ReshapeStep)

KERNELS = ("auto", "heuristic", "px", "ch", "gemm")


def conv_candidates(step: ConvStep) -> List[str]:
    """The kernels that can compute ``step``."""
    if step.dense:
        return ["ch", "gemm"]
    out = ["ch", "gemm"]
    if step.stride == (1, 1):
        out.insert(0, "px")
    return out


def heuristic_kernel(step: ConvStep, N: int) -> str:
    """Without timing: the direct kernels for small problems, GEMM for wide layers on
    big batches (measured on the CNet layers: BLAS wins from about 10 MFLOPs a call)."""
    Kc, C, R, S = step.w.shape
    P = int(np.prod(step.out_shape[1:])) if not step.dense else 1
    flops = 2 * N * Kc * C * R * S * P
    if flops > 10e6:
        return "gemm"
    if step.dense or step.stride != (1, 1):
        return "ch"
    Ho, Wo = step.out_shape[1:]
    return "px" if Wo >= 4 and Ho * Wo >= 16 else "ch"


# --- numpy ops (the twins; also the "gemm" kernel's convolution) -------------------------
class _PyStep:
    """A step as a Python callable (the executor's PyOp wraps it)."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]):
        self.fn = fn

    def __call__(self, x):
        return self.fn(x)


def _gemm_conv(step: ConvStep, N: int) -> Callable:
    """im2col + GEMM on the folded weights (dtnn's own variant), act in place."""
    from dtnn.conv import CONV_ALGORITHMS
    from dtnn.conv.base import ConvGeometry
    if step.dense:
        w2 = np.ascontiguousarray(step.w.reshape(step.w.shape[0], -1).T)   # (F, units)

        def dense(x):
            y = x @ w2
            y += step.b
            if step.act != K.ACT_NONE:
                K.compiled_affine_act(y, None, None, step.act, step.alpha, out=y)
            return y
        return dense
    algo = CONV_ALGORITHMS.get("im2col")()
    algo.training = False
    C, H, W = step.in_shape
    Kc, _, R, S = step.w.shape
    geom = ConvGeometry(N=N, C=C, H=H, W=W, K=Kc, R=R, S=S, stride=step.stride,
                        padding=step.padding, dilation=step.dilation, groups=1)

    def conv(x):
        y = np.ascontiguousarray(algo.forward(x, step.w, step.b, geom), np.float32)
        if step.act != K.ACT_NONE:
            K.compiled_affine_act(y, None, None, step.act, step.alpha, out=y)
        return y
    return conv


def _twin_conv(step: ConvStep, kernel: str) -> Callable:
    (sh, sw), (ph, pw), (dh, dw) = step.stride, step.padding, step.dilation
    Kc, C, R, S = step.w.shape
    if kernel == "px":
        wpk, b = K.pack_px(step.w), K.padded(step.b, -(-Kc // K.PX_KB) * K.PX_KB)
        a = None if step.alpha is None else K.padded(step.alpha, len(b))
        return lambda x: K.infer_conv_px(x, wpk, b, a, step.act, Kc, R, S, ph, pw, dh, dw)
    wck = K.pack_ch(step.w)
    b = K.padded(step.b, wck.shape[1])
    a = None if step.alpha is None else K.padded(step.alpha, wck.shape[1])
    if step.dense:
        return lambda x: K.infer_conv_ch(x.reshape(len(x), C, 1, 1), wck, b, a, step.act,
                                         Kc, 1, 1, 1, 1, 0, 0, 1, 1).reshape(len(x), Kc)
    return lambda x: K.infer_conv_ch(x, wck, b, a, step.act, Kc, R, S, sh, sw, ph, pw, dh, dw)


# --- binding ---------------------------------------------------------------------------
class Bound:
    """A plan bound to batch size ``N``: ``ops`` for the executor and, per convolution,
    the kernel chosen (``choices``, name -> kernel)."""

    def __init__(self, N: int, ops: list, choices: Dict[str, str], compiled: bool):
        self.N, self.ops, self.choices, self.compiled = N, ops, choices, compiled

    def run(self, x: np.ndarray) -> np.ndarray:
        if self.compiled:
            return K.executor().run(self.ops, x)
        for op in self.ops:
            x = op(x)
        return x


def _conv_op(step: ConvStep, N: int, kernel: str, ex):
    """The op computing ``step`` with ``kernel`` on batches of N."""
    if kernel == "gemm":
        fn = _gemm_conv(step, N)
        return ex.PyOp(fn) if ex else _PyStep(fn)
    if ex is None:
        return _PyStep(_twin_conv(step, kernel))
    (sh, sw), (ph, pw), (dh, dw) = step.stride, step.padding, step.dilation
    Kc, C, R, S = step.w.shape
    if kernel == "px":
        nb = -(-Kc // K.PX_KB) * K.PX_KB
        return ex.ConvPxOp(N, step.in_shape, K.pack_px(step.w), K.padded(step.b, nb),
                           None if step.alpha is None else K.padded(step.alpha, nb),
                           step.act, Kc, R, S, ph, pw, dh, dw)
    wck = K.pack_ch(step.w)
    kp = wck.shape[1]
    return ex.ConvChOp(N, step.in_shape, wck, K.padded(step.b, kp),
                       None if step.alpha is None else K.padded(step.alpha, kp), step.act,
                       Kc, R, S, sh, sw, ph, pw, dh, dw, step.out_shape)


def _time_op(op, x: np.ndarray, ex, reps: int = 7) -> float:
    run = (lambda: ex.run([op], x)) if ex else (lambda: op(x))
    run()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _choose(step: ConvStep, N: int, kernel: str, ex, rng) -> str:
    cands = conv_candidates(step)
    if kernel in cands:
        return kernel
    if kernel != "auto" or ex is None or len(cands) == 1:
        return heuristic_kernel(step, N)
    x = rng.standard_normal((N,) + tuple(step.in_shape)).astype(np.float32)
    best, best_t = cands[0], float("inf")
    for cand in cands:
        t = _time_op(_conv_op(step, N, cand, ex), x, ex)
        if t < best_t:
            best, best_t = cand, t
    return best


def bind(steps: list, N: int, kernel: str = "auto", compiled: Optional[bool] = None,
         seed: int = 0) -> Bound:
    """Bind ``steps`` to batches of ``N`` (see the module docstring for ``kernel``);
    ``compiled=None``: the compiled executor when it is available."""
    ex = K.executor()
    if compiled is False:
        ex = None
    elif compiled and ex is None:
        raise RuntimeError("the compiled inference kernels (dtnn._kernels._infer) are not "
                           "available (extension missing or DTNN_KERNELS=numpy)")
    choices: Dict[str, str] = {}
    ops = _bind_list(steps, N, kernel, ex, choices, np.random.default_rng(seed))
    return Bound(N, ops, choices, ex is not None)


def _bind_list(steps: list, N: int, kernel: str, ex, choices: Dict[str, str], rng) -> list:
    ops: list = []
    owns_buffer = False   # the previous op wrote into a buffer of its own (in-place safe)
    for step in steps:
        if isinstance(step, ConvStep):
            k = _choose(step, N, kernel, ex, rng)
            choices[step.name] = k
            op = _conv_op(step, N, k, ex)
            owns = k != "gemm"
        elif isinstance(step, AffineStep):
            if ex is None:
                op = _PyStep(lambda x, s=step: K.infer_affine_act(x, s.scale, s.shift, s.act,
                                                                  s.alpha))
            else:
                op = ex.AffineOp(N, step.shape, step.scale, step.shift, step.act, step.alpha,
                                 inplace=owns_buffer)
            owns = True
        elif isinstance(step, PoolStep):
            (R, S), (sh, sw), (ph, pw) = step.kernel, step.stride, step.padding
            if ex is None:
                op = _PyStep(lambda x, a=(R, S, sh, sw, ph, pw): K.infer_maxpool(x, *a))
            else:
                op = ex.MaxPoolOp(N, step.in_shape, R, S, sh, sw, ph, pw)
            owns = True
        elif isinstance(step, ReshapeStep):
            shape = (N,) + tuple(step.out_shape)
            op = ex.ReshapeOp(shape) if ex else _PyStep(lambda x, s=shape: x.reshape(s))
            owns = False
        elif isinstance(step, LayerStep):
            def fn(x, layer=step.layer):
                return np.ascontiguousarray(layer.forward(x, False), np.float32)
            op = ex.PyOp(fn) if ex else _PyStep(fn)
            owns = False
        elif isinstance(step, BlockStep):
            branches = [_bind_list(b, N, kernel, ex, choices, rng) for b in step.branches]
            out = np.empty((N,) + tuple(step.out_shape), np.float32)
            if ex is not None:
                op = ex.BlockOp(branches, step.concat, out)
            else:
                op = _PyStep(_py_block(branches, step.concat, out))
            owns = True
        else:
            raise TypeError(f"unknown plan step {step!r}")
        ops.append(op)
        owns_buffer = owns
    return ops


def _py_block(branches: list, concat: bool, out: np.ndarray) -> Callable:
    def block(x):
        outs = []
        for ops in branches:
            h = x
            for op in ops:
                h = op(h)
            outs.append(h)
        if concat:
            np.concatenate(outs, axis=1, out=out)
        else:
            np.add(outs[0], outs[1], out=out)
        return out
    return block
