"""Spatial pooling: windowed max/average and global max/average."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from dtnn._kernels import maxpool_backward, maxpool_forward
from dtnn.errors import ConfigError
from dtnn.layers._util import jsonable, pair, require_rank
from dtnn.layers.base import LAYERS, Layer, Shape


class _WindowPool(Layer):
    """Shared argument handling for MaxPool2D / AvgPool2D."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size=jsonable(kernel_size), stride=jsonable(stride),
                         padding=jsonable(padding))
        kind = self.registry_name
        self.kernel_size = pair(kernel_size, f"{kind} kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, f"{kind} stride")
        self.padding = pair(padding, f"{kind} padding", minimum=0)
        for k, p in zip(self.kernel_size, self.padding):
            if 2 * p > k:
                raise ConfigError(f"{kind}: padding {list(self.padding)} must be at most half "
                                  f"the kernel size {list(self.kernel_size)}")

    def _out_hw(self, H: int, W: int) -> Tuple[int, int]:
        (R, S), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (H + 2 * ph - R) // sh + 1, (W + 2 * pw - S) // sw + 1

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        C, H, W = require_rank(self.registry_name, input_shape, (3,))
        ho, wo = self._out_hw(H, W)
        if ho < 1 or wo < 1:
            raise ConfigError(f"{self.registry_name}: output size {ho}x{wo} < 1 for input "
                              f"{H}x{W} and kernel {list(self.kernel_size)}")
        self.input_shape = (C, H, W)
        self.output_shape = (C, ho, wo)
        return self.output_shape


@LAYERS.register("maxpool2d")
class MaxPool2D(_WindowPool):
    """Max pooling (padding never wins; stride defaults to the kernel size)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size, stride, padding)
        self._argmax: Optional[np.ndarray] = None
        self._hw: Tuple[int, int] = (0, 0)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        (R, S), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        y, self._argmax = maxpool_forward(x, R, S, sh, sw, ph, pw)
        self._hw = x.shape[2:]
        return y

    def backward(self, dy: np.ndarray) -> Optional[np.ndarray]:
        argmax, self._argmax = self._argmax, None
        if not self.needs_input_grad:
            return None
        H, W = self._hw
        return maxpool_backward(np.ascontiguousarray(dy, dtype=np.float32), argmax, H, W)


@LAYERS.register("avgpool2d")
class AvgPool2D(_WindowPool):
    """Average pooling; padded zeros count in the average (count_include_pad)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size, stride, padding)
        self._xshape: Tuple[int, ...] = ()

    def _tiles(self) -> bool:
        """Non-overlapping, unpadded windows: a reshape + mean does it."""
        return self.stride == self.kernel_size and self.padding == (0, 0)

    def _taps(self, ho: int, wo: int):
        (R, S), (sh, sw) = self.kernel_size, self.stride
        for r in range(R):
            for s in range(S):
                yield (slice(r, r + sh * (ho - 1) + 1, sh), slice(s, s + sw * (wo - 1) + 1, sw))

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        N, C, H, W = x.shape
        ho, wo = self._out_hw(H, W)
        (R, S), (ph, pw) = self.kernel_size, self.padding
        self._xshape = x.shape
        scale = np.float32(1.0 / (R * S))
        if self._tiles():
            t = x[:, :, :ho * R, :wo * S].reshape(N, C, ho, R, wo, S)
            y = t.sum(axis=(3, 5), dtype=np.float32)
            y *= scale
            return y
        xp = x if (ph, pw) == (0, 0) else np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        y = np.zeros((N, C, ho, wo), np.float32)
        for hs, ws in self._taps(ho, wo):
            y += xp[:, :, hs, ws]
        y *= scale
        return y

    def backward(self, dy: np.ndarray) -> Optional[np.ndarray]:
        if not self.needs_input_grad:
            return None
        N, C, H, W = self._xshape
        ho, wo = dy.shape[2:]
        (R, S), (ph, pw) = self.kernel_size, self.padding
        g = dy * np.float32(1.0 / (R * S))
        if self._tiles():
            dx = np.zeros((N, C, H, W), np.float32)
            dx[:, :, :ho * R, :wo * S].reshape(N, C, ho, R, wo, S)[...] = g[:, :, :, None, :, None]
            return dx
        dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), np.float32)
        for hs, ws in self._taps(ho, wo):
            dxp[:, :, hs, ws] += g
        if (ph, pw) == (0, 0):
            return dxp
        return np.ascontiguousarray(dxp[:, :, ph:ph + H, pw:pw + W])


class _GlobalPool(Layer):
    """A reduction over H and W: (C, H, W) -> (C,)."""

    def __init__(self):
        super().__init__()
        self._xshape: Tuple[int, ...] = ()

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        C, H, W = require_rank(self.registry_name, input_shape, (3,))
        self.input_shape, self.output_shape = (C, H, W), (C,)
        return self.output_shape


@LAYERS.register("globalavgpool")
class GlobalAvgPool(_GlobalPool):
    """Mean over H and W: (C, H, W) -> (C,)."""

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        N, C, H, W = x.shape
        self._xshape = x.shape
        y = x.reshape(N, C, H * W).sum(axis=2, dtype=np.float32)
        y *= np.float32(1.0 / (H * W))
        return y

    def backward(self, dy: np.ndarray) -> Optional[np.ndarray]:
        if not self.needs_input_grad:
            return None
        N, C, H, W = self._xshape
        dx = np.empty((N, C, H, W), np.float32)
        dx[...] = (dy * np.float32(1.0 / (H * W)))[:, :, None, None]
        return dx


@LAYERS.register("globalmaxpool")
class GlobalMaxPool(_GlobalPool):
    """Max over H and W: (C, H, W) -> (C,); the gradient goes to the first maximum."""

    def __init__(self):
        super().__init__()
        self._arg: Optional[np.ndarray] = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        N, C, H, W = x.shape
        self._xshape = x.shape
        flat = x.reshape(N, C, H * W)
        arg = flat.argmax(axis=2)
        self._arg = arg
        return np.take_along_axis(flat, arg[:, :, None], axis=2)[:, :, 0].astype(np.float32)

    def backward(self, dy: np.ndarray) -> Optional[np.ndarray]:
        arg, self._arg = self._arg, None
        if not self.needs_input_grad:
            return None
        N, C, H, W = self._xshape
        dx = np.zeros((N, C, H * W), np.float32)
        np.put_along_axis(dx, arg[:, :, None], dy.reshape(N, C, 1), axis=2)
        return dx.reshape(N, C, H, W)
