"""The ``torch`` convolution variant: torch.nn.functional.conv2d and its gradients
(torch.nn.grad.conv2d_input / conv2d_weight), on zero-copy views of the numpy arrays.

Available when torch is installed (``supports`` is False otherwise); torch's thread
count is set by ``dtnn.threads.set_threads`` like the other libraries'.
"""
from __future__ import annotations

import numpy as np

from dtnn.conv.base import CONV_ALGORITHMS, ConvAlgorithm, ConvGeometry, bias_grad_into

_torch = None


def torch_available() -> bool:
    global _torch
    if _torch is None:
        try:
            import torch
            from dtnn.threads import configure_torch
            configure_torch(torch)
            _torch = torch
        except ImportError:
            _torch = False
    return _torch is not False


@CONV_ALGORITHMS.register("torch")
class TorchConv(ConvAlgorithm):
    def supports(self, g: ConvGeometry) -> bool:
        return torch_available()

    @staticmethod
    def _kw(g: ConvGeometry):
        return dict(stride=g.stride, padding=g.padding, dilation=g.dilation, groups=g.groups)

    def forward(self, x, w, b, g):
        if not torch_available():
            raise RuntimeError("the 'torch' convolution variant needs torch installed")
        T = _torch
        with T.no_grad():
            y = T.nn.functional.conv2d(
                T.from_numpy(np.ascontiguousarray(x, np.float32)),
                T.from_numpy(np.ascontiguousarray(w, np.float32)),
                None if b is None else T.from_numpy(np.ascontiguousarray(b, np.float32)),
                **self._kw(g))
        return y.numpy()

    def backward(self, dy, x, w, g, need_dx, dw_out, db_out):
        T = _torch
        dyt = T.from_numpy(np.ascontiguousarray(dy, np.float32))
        wt = T.from_numpy(np.ascontiguousarray(w, np.float32))
        with T.no_grad():
            if db_out is not None:
                bias_grad_into(dy, db_out)
            dwt = T.nn.grad.conv2d_weight(T.from_numpy(np.ascontiguousarray(x, np.float32)),
                                          tuple(wt.shape), dyt, **self._kw(g))
            dw_out[...] = dwt.numpy()
            if not need_dx:
                return None
            dx = T.nn.grad.conv2d_input((g.N, g.C, g.H, g.W), wt, dyt, **self._kw(g))
        return np.ascontiguousarray(dx.numpy())
