"""Batch normalisation over channels (4-D input) or features (2-D input)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from dtnn.errors import ConfigError
from dtnn.layers._util import require_rank
from dtnn.layers.base import LAYERS, Layer, Shape


@LAYERS.register("batchnorm")
class BatchNorm(Layer):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, per channel.

    Training mode normalises with the batch statistics (biased variance) and updates the
    running statistics like torch: ``running = (1 - momentum) * running + momentum *
    batch_stat``, with the *unbiased* batch variance.  Inference uses the running
    statistics.  Parameters ``gamma``/``beta`` (C,) have no weight decay; buffers
    ``running_mean``/``running_var`` (C,) are checkpointed by the model.
    """

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__(momentum=float(momentum), eps=float(eps))
        if not 0.0 <= float(momentum) <= 1.0:
            raise ConfigError(f"batchnorm: momentum must be in [0, 1], got {momentum!r}")
        if not float(eps) > 0.0:
            raise ConfigError(f"batchnorm: eps must be > 0, got {eps!r}")
        self.momentum = float(momentum)
        self.eps = float(eps)
        self._xhat: Optional[np.ndarray] = None
        self._inv_std: Optional[np.ndarray] = None
        self._x: Optional[np.ndarray] = None
        self._mean: Optional[np.ndarray] = None     # batch mean (compiled path)
        self._relu_y: Optional[np.ndarray] = None   # output of forward_relu(_pool)
        self._x4: Optional[np.ndarray] = None       # input of forward_relu_pool
        self._pool_argmax: Optional[np.ndarray] = None
        self._training = False

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        shape = require_rank("batchnorm", input_shape, (1, 3))
        C = shape[0]
        self.input_shape = self.output_shape = shape
        self.add_param("gamma", np.ones(C, np.float32))
        self.add_param("beta", np.zeros(C, np.float32))
        self.buffers["running_mean"] = np.zeros(C, np.float32)
        self.buffers["running_var"] = np.ones(C, np.float32)
        return self.output_shape

    @staticmethod
    def _as3(a: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> (N, C, H*W); (N, F) -> (N, F, 1): channels on axis 1."""
        return a.reshape(a.shape[0], a.shape[1], -1)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        x3 = self._as3(x)
        N, C, L = x3.shape
        gamma, beta = self.params["gamma"], self.params["beta"]
        self._training = training
        self._mean = None
        if not training:
            inv_std = (1.0 / np.sqrt(self.buffers["running_var"] + np.float32(self.eps))
                       ).astype(np.float32)
            self._inv_std = inv_std
            self._xhat = None
            self._x = x
            scale = gamma * inv_std
            shift = beta - self.buffers["running_mean"] * scale
            if L > 1:
                from dtnn._kernels import bn_apply
                return bn_apply(x3, scale, shift).reshape(x.shape)
            y = x3 * scale[None, :, None]
            y += shift[None, :, None]
            return y.reshape(x.shape)
        n = N * L
        if L > 1:        # images: compiled passes (two, threaded by channel), x kept
            return self._forward_kernels(x, x3, n).reshape(x.shape)
        mean = x3.sum(axis=2).sum(axis=0) / np.float32(n)
        xhat = x3 - mean[None, :, None]
        var = np.einsum("ncl,ncl->nc", xhat, xhat).sum(axis=0) / np.float32(n)
        inv_std = (1.0 / np.sqrt(var + np.float32(self.eps))).astype(np.float32)
        xhat *= inv_std[None, :, None]
        self._xhat, self._inv_std = xhat, inv_std
        self._update_running(mean, var, n)
        y = xhat * gamma[None, :, None]
        y += beta[None, :, None]
        return y.reshape(x.shape)

    def _update_running(self, mean, var, n: int) -> None:
        m = np.float32(self.momentum)
        rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
        rm *= 1 - m
        rm += m * mean
        rv *= 1 - m
        rv += m * var * np.float32(n / max(n - 1, 1))

    def _batch_affine(self, x3: np.ndarray, n: int):
        """Training on images (compiled): the batch statistics of x3 as the affine map
        ``(scale, shift)``; keeps what the compiled backward needs and updates the
        running statistics."""
        from dtnn._kernels import bn_stats
        mean, var = bn_stats(x3)
        inv_std = (1.0 / np.sqrt(var + np.float32(self.eps))).astype(np.float32)
        scale = self.params["gamma"] * inv_std
        shift = self.params["beta"] - mean * scale
        self._x, self._mean, self._inv_std, self._xhat = x3, mean, inv_std, None
        self._update_running(mean, var, n)
        return scale, shift

    def _forward_kernels(self, x, x3, n: int) -> np.ndarray:
        from dtnn._kernels import bn_apply
        return bn_apply(x3, *self._batch_affine(x3, n))

    def _set_kernel_grads(self, dx, dgamma, dbeta, shape) -> Optional[np.ndarray]:
        """Store a compiled backward's parameter gradients; dx in ``shape`` (or None)."""
        self.set_grad("beta", dbeta)
        self.set_grad("gamma", dgamma)
        return None if dx is None else dx.reshape(shape)

    # --- BatchNorm + ReLU fused (called by Model for a batchnorm followed by a relu) ----
    def can_fuse_relu(self, x: np.ndarray, training: bool) -> bool:
        """Whether ``forward_relu`` applies: training on images (the compiled path)."""
        return training and x.ndim == 4 and x.shape[2] * x.shape[3] > 1

    def forward_relu(self, x: np.ndarray) -> np.ndarray:
        """relu(self.forward(x, True)) in two passes instead of three (statistics, then
        the affine map and ReLU together); ``backward_relu`` is its backward.  The
        pre-ReLU output is never stored."""
        from dtnn._kernels import bn_apply_relu
        x = np.ascontiguousarray(x, dtype=np.float32)
        x3 = self._as3(x)
        N, C, L = x3.shape
        self._training = True
        self._relu_y = y = bn_apply_relu(x3, *self._batch_affine(x3, N * L))
        return y.reshape(x.shape)

    def backward_relu(self, dy: np.ndarray) -> Optional[np.ndarray]:
        """The backward of ``forward_relu``: BatchNorm's backward of dy gated by the
        ReLU's output, in the same two passes as BatchNorm's alone."""
        from dtnn._kernels import bn_relu_backward
        dy3 = self._as3(np.ascontiguousarray(dy, dtype=np.float32))
        x3, mean, y3 = self._x, self._mean, self._relu_y
        self._x = self._mean = self._relu_y = None
        return self._set_kernel_grads(
            *bn_relu_backward(dy3, y3, x3, mean, self._inv_std, self.params["gamma"], True,
                              self.needs_input_grad), dy.shape)

    # --- BatchNorm + ReLU + 2x2 max pooling fused (Model, for batchnorm, relu, maxpool2d(2))
    def forward_relu_pool(self, x: np.ndarray) -> np.ndarray:
        """maxpool2d(2)(relu(self.forward(x, True))) with the pool's 2x2 / stride-2 window
        in the affine map's pass (csrc/bnact.c): only the pooled map is written, the
        ReLU's full-size output is never stored.  Same bits as the three layers;
        ``backward_relu_pool`` is its backward.  Needs ``can_fuse_relu`` and H, W >= 2."""
        from dtnn._kernels import bn_apply_relu_pool2
        x = np.ascontiguousarray(x, dtype=np.float32)
        N, C, H, W = x.shape
        self._training = True
        scale, shift = self._batch_affine(self._as3(x), N * H * W)
        y, self._pool_argmax = bn_apply_relu_pool2(x, scale, shift)
        self._x4, self._relu_y = x, y
        return y

    def backward_relu_pool(self, dy: np.ndarray) -> Optional[np.ndarray]:
        """The backward of ``forward_relu_pool``: the pool's gradient routed to its
        argmax, gated by the ReLU, through BatchNorm, without the full-size gradient in
        between (same bits as the three backwards)."""
        from dtnn._kernels import bn_relu_pool2_backward
        x4, y, argmax, mean = self._x4, self._relu_y, self._pool_argmax, self._mean
        self._x = self._x4 = self._mean = self._relu_y = self._pool_argmax = None
        return self._set_kernel_grads(
            *bn_relu_pool2_backward(np.ascontiguousarray(dy, dtype=np.float32), y, argmax,
                                    x4, mean, self._inv_std, self.params["gamma"],
                                    self.needs_input_grad), x4.shape)

    def backward(self, dy: np.ndarray) -> Optional[np.ndarray]:
        dy3 = self._as3(np.ascontiguousarray(dy, dtype=np.float32))
        N, C, L = dy3.shape
        gamma, inv_std = self.params["gamma"], self._inv_std
        if self._training and getattr(self, "_mean", None) is not None:
            from dtnn._kernels import bn_backward
            x3, mean, self._x, self._mean = self._x, self._mean, None, None
            return self._set_kernel_grads(
                *bn_backward(dy3, x3, mean, inv_std, gamma, True, self.needs_input_grad),
                dy.shape)
        if not self._training:
            x, self._x = self._x, None
            xhat = (self._as3(x) - self.buffers["running_mean"][None, :, None]) \
                * inv_std[None, :, None]
        else:
            xhat, self._xhat = self._xhat, None
        dbeta = dy3.sum(axis=2).sum(axis=0)
        dgamma = np.einsum("ncl,ncl->nc", dy3, xhat).sum(axis=0)
        self.set_grad("beta", dbeta)
        self.set_grad("gamma", dgamma)
        if not self.needs_input_grad:
            return None
        scale = (gamma * inv_std)[None, :, None]
        if not self._training:
            return (dy3 * scale).reshape(dy.shape)
        n = np.float32(N * L)
        # dx = gamma/std * (dy - mean(dy) - xhat * mean(dy * xhat))
        dx = xhat * (-dgamma / n)[None, :, None]
        dx += dy3
        dx -= (dbeta / n)[None, :, None]
        dx *= scale
        return dx.reshape(dy.shape)
