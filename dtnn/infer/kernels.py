"""Kernels of the fused inference plan: filter packing, the numpy twins, and the
dispatch to the compiled versions (``dtnn._kernels._infer``, C in csrc/infer.c).

The twins are the oracle of the tests and the fallback without the extension
(``DTNN_KERNELS=numpy``); same signatures, same results up to float rounding:

    infer_conv_px(x, wpk, bias, alpha, act, K, R, S, ph, pw, dh, dw, out=None)
    infer_conv_ch(x, wck, bias, alpha, act, K, R, S, sh, sw, ph, pw, dh, dw, out=None)
    infer_affine_act(x, scale, shift, act, alpha, out=None)
    infer_maxpool(x, R, S, sh, sw, ph, pw, out=None)

``act``: ACT_NONE, ACT_RELU, ACT_RELU6, ACT_PRELU (``alpha``: one slope per channel).
"""
from __future__ import annotations

import sys
from typing import Optional

import numpy as np

from dtnn._kernels import resolve

ACT_NONE, ACT_RELU, ACT_RELU6, ACT_PRELU = 0, 1, 2, 3
ACTIVATIONS = {"relu": ACT_RELU, "relu6": ACT_RELU6, "prelu": ACT_PRELU}

#: output channels per block of the pixel kernel's packed filters (csrc/infer.h)
PX_KB = 8
#: the channel kernel's packed filters have K rounded up to a multiple of this
CH_KP = 16


def padded(v: np.ndarray, n: int) -> np.ndarray:
    """``v`` (float32) zero-padded to ``n`` values."""
    out = np.zeros(n, np.float32)
    out[:len(v)] = v
    return out


def pack_px(w: np.ndarray) -> np.ndarray:
    """(K, C, R, S) -> (ceil(K/8), C*R*S, 8): block kb holds filters 8kb..8kb+7 side by
    side, tap-major (zero filters past K)."""
    K = w.shape[0]
    nkb = -(-K // PX_KB)
    wp = np.zeros((nkb * PX_KB, int(np.prod(w.shape[1:]))), np.float32)
    wp[:K] = w.reshape(K, -1)
    return np.ascontiguousarray(wp.reshape(nkb, PX_KB, -1).transpose(0, 2, 1))


def unpack_px(wpk: np.ndarray, K: int, C: int, R: int, S: int) -> np.ndarray:
    return np.ascontiguousarray(wpk.transpose(0, 2, 1).reshape(-1, C, R, S)[:K])


def pack_ch(w: np.ndarray) -> np.ndarray:
    """(K, C, R, S) -> (C*R*S, Kp): one row of all output channels per tap."""
    K = w.shape[0]
    kp = -(-K // CH_KP) * CH_KP
    out = np.zeros((int(np.prod(w.shape[1:])), kp), np.float32)
    out[:, :K] = w.reshape(K, -1).T
    return out


def pack_dense(w: np.ndarray) -> np.ndarray:
    """Dense weights (F, units) -> the channel kernel's (F, Kp)."""
    F, units = w.shape
    out = np.zeros((F, -(-units // CH_KP) * CH_KP), np.float32)
    out[:, :units] = w
    return out


# --- the twins -----------------------------------------------------------------------------
def _activate(y: np.ndarray, act: int, alpha: Optional[np.ndarray]) -> np.ndarray:
    if act == ACT_RELU:
        np.maximum(y, 0, out=y)
    elif act == ACT_RELU6:
        np.clip(y, 0, 6, out=y)
    elif act == ACT_PRELU:
        a = np.asarray(alpha, np.float32)[:y.shape[1]].reshape((1, -1) + (1,) * (y.ndim - 2))
        np.copyto(y, np.where(y > 0, y, y * a))
    elif act != ACT_NONE:
        raise ValueError(f"act must be 0..3, got {act}")
    return y


def _result(y: np.ndarray, out):
    if out is None:
        return y
    out[...] = y
    return out


def _conv(x, w, bias, act, alpha, sh, sw, ph, pw, dh, dw):
    from dtnn.conv.kernels import direct_forward
    x = np.ascontiguousarray(x, np.float32)
    y = direct_forward(x, w, None, sh, sw, ph, pw, dh, dw, 1).astype(np.float32)
    y += np.asarray(bias, np.float32)[:w.shape[0]].reshape(1, -1, 1, 1)
    return _activate(y, act, alpha)


def infer_conv_px(x, wpk, bias, alpha, act, K, R, S, ph, pw, dh, dw, out=None):
    C = np.asarray(x).shape[1]
    w = unpack_px(np.asarray(wpk, np.float32), K, C, R, S)
    return _result(_conv(x, w, bias, act, alpha, 1, 1, ph, pw, dh, dw), out)


def infer_conv_ch(x, wck, bias, alpha, act, K, R, S, sh, sw, ph, pw, dh, dw, out=None):
    C = np.asarray(x).shape[1]
    w = np.ascontiguousarray(np.asarray(wck, np.float32)[:, :K].T).reshape(K, C, R, S)
    return _result(_conv(x, w, bias, act, alpha, sh, sw, ph, pw, dh, dw), out)


def infer_affine_act(x, scale, shift, act, alpha, out=None):
    x = np.asarray(x, np.float32)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = x.copy()
    if scale is not None:
        y *= np.asarray(scale, np.float32)[:x.shape[1]].reshape(shape)
    if shift is not None:
        y += np.asarray(shift, np.float32)[:x.shape[1]].reshape(shape)
    return _result(_activate(y, act, alpha), out)


def infer_maxpool(x, R, S, sh, sw, ph, pw, out=None):
    from dtnn._kernels.twins import maxpool_forward
    y, _ = maxpool_forward(np.ascontiguousarray(x, np.float32), R, S, sh, sw, ph, pw)
    return _result(y, out)


# --- dispatch ------------------------------------------------------------------------------
_twins = sys.modules[__name__]
compiled_conv_px = resolve("infer_conv_px", "dtnn._kernels._infer", _twins)
compiled_conv_ch = resolve("infer_conv_ch", "dtnn._kernels._infer", _twins)
compiled_affine_act = resolve("infer_affine_act", "dtnn._kernels._infer", _twins)
compiled_maxpool = resolve("infer_maxpool", "dtnn._kernels._infer", _twins)


def executor():
    """The compiled executor module (``dtnn._kernels._infer``), or None when the
    extension is missing or the twins are forced (the plan then runs Python steps)."""
    if compiled_conv_px is infer_conv_px:
        return None
    import dtnn._kernels._infer as mod
    return mod
