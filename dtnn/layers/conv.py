"""2-D convolution layer: owns the parameters, delegates the maths to a ConvAlgorithm."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from dtnn.conv import CONV_ALGORITHMS, DEFAULT_ALGORITHM, ConvAlgorithm, ConvGeometry
from dtnn.errors import ConfigError
from dtnn.layers._util import jsonable, pair, require_rank
from dtnn.layers.base import LAYERS, Layer, Shape, init_bias, init_weights


def resolve_padding(padding, kernel: Tuple[int, int], stride: Tuple[int, int],
                    dilation: Tuple[int, int]) -> Tuple[int, int]:
    """Turn an int, [h, w], "valid" or "same" into explicit symmetric padding."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0)
        if mode == "same":
            if stride != (1, 1):
                raise ConfigError(f"padding='same' needs stride 1, got stride {list(stride)}")
            pads = []
            for k, d in zip(kernel, dilation):
                span = d * (k - 1)
                if span % 2:
                    raise ConfigError(
                        f"padding='same' is impossible with symmetric padding for kernel "
                        f"{list(kernel)} and dilation {list(dilation)} (dilation*(kernel-1) "
                        f"must be even)")
                pads.append(span // 2)
            return (pads[0], pads[1])
        raise ConfigError(f"padding must be an int, [h, w], 'same' or 'valid', got {padding!r}")
    return pair(padding, "padding", minimum=0)


@LAYERS.register("conv2d")
class Conv2D(Layer):
    """2-D convolution, NCHW.

    Parameters: ``weight`` (K, C // groups, R, S), with weight decay, and ``bias`` (K,)
    without.  The computation is done by ``self.algorithm`` (a ``ConvAlgorithm``
    created at build time from the ``algorithm`` name, by default ``bestof``: the
    fastest variant for the layer's shape, tuned online; a tuner may replace it).
    """

    def __init__(self, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, init: str = "he",
                 algorithm: str = DEFAULT_ALGORITHM):
        super().__init__(out_channels=jsonable(out_channels), kernel_size=jsonable(kernel_size),
                         stride=jsonable(stride), padding=jsonable(padding),
                         dilation=jsonable(dilation), groups=jsonable(groups), bias=bool(bias),
                         init=init, algorithm=algorithm)
        if int(out_channels) < 1:
            raise ConfigError(f"conv2d out_channels must be >= 1, got {out_channels!r}")
        if int(groups) < 1:
            raise ConfigError(f"conv2d groups must be >= 1, got {groups!r}")
        self.out_channels = int(out_channels)
        self.kernel_size = pair(kernel_size, "conv2d kernel_size")
        self.stride = pair(stride, "conv2d stride")
        self.dilation = pair(dilation, "conv2d dilation")
        self.padding = resolve_padding(padding, self.kernel_size, self.stride, self.dilation)
        self.groups = int(groups)
        self.use_bias = bool(bias)
        self.init = init
        if self.out_channels % self.groups:
            raise ConfigError(f"conv2d out_channels ({self.out_channels}) must be divisible "
                              f"by groups ({self.groups})")
        self.algorithm: Optional[ConvAlgorithm] = None
        self._x: Optional[np.ndarray] = None
        self._geom: Optional[ConvGeometry] = None

    def describe(self) -> str:
        (R, S), (sh, sw), (ph, pw), (dh, dw) = (self.kernel_size, self.stride, self.padding,
                                                self.dilation)
        parts = [f"{self.out_channels}", f"{R}x{S}"]
        if (sh, sw) != (1, 1):
            parts.append(f"stride={sh}" if sh == sw else f"stride={sh}x{sw}")
        if (ph, pw) != (0, 0):
            parts.append(f"pad={ph}" if ph == pw else f"pad={ph}x{pw}")
        if (dh, dw) != (1, 1):
            parts.append(f"dil={dh}" if dh == dw else f"dil={dh}x{dw}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if not self.use_bias:
            parts.append("no bias")
        if self.config["algorithm"] != DEFAULT_ALGORITHM:
            parts.append(self.config["algorithm"])
        return f"conv2d({', '.join(parts)})"

    def geometry(self, n: int, hw: Optional[Tuple[int, int]] = None) -> ConvGeometry:
        """The ConvGeometry of a batch of ``n`` samples (of the built input size, or ``hw``)."""
        C, H, W = self.input_shape
        if hw is not None:
            H, W = hw
        return ConvGeometry(N=int(n), C=C, H=H, W=W, K=self.out_channels,
                            R=self.kernel_size[0], S=self.kernel_size[1], stride=self.stride,
                            padding=self.padding, dilation=self.dilation, groups=self.groups)

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        C, H, W = require_rank("conv2d", input_shape, (3,))
        self.input_shape = (C, H, W)
        if C % self.groups:
            raise ConfigError(f"conv2d: input channels ({C}) must be divisible by groups "
                              f"({self.groups})")
        geom = self.geometry(1)
        ho, wo = geom.out_hw
        if ho < 1 or wo < 1:
            raise ConfigError(
                f"conv2d: output size {ho}x{wo} < 1 for input {H}x{W}, kernel "
                f"{list(self.kernel_size)}, stride {list(self.stride)}, padding "
                f"{list(self.padding)}, dilation {list(self.dilation)}")
        self.algorithm = CONV_ALGORITHMS.get(self.config["algorithm"])()
        if not self.algorithm.supports(geom):
            raise ConfigError(f"conv2d: algorithm '{self.config['algorithm']}' does not "
                              f"support this convolution ({geom})")
        K, (R, S), G = self.out_channels, self.kernel_size, self.groups
        fan_in = (C // G) * R * S
        fan_out = (K // G) * R * S
        self.add_param("weight", init_weights(rng, (K, C // G, R, S), fan_in, fan_out, self.init),
                       decay=True)
        if self.use_bias:
            self.add_param("bias", init_bias(rng, K, fan_in, self.init))
        self.output_shape = (K, ho, wo)
        return self.output_shape

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if x.ndim != 4 or x.shape[1] != self.input_shape[0]:
            raise ValueError(f"{self.name}: expected input (N, {self.input_shape[0]}, H, W), "
                             f"got {x.shape}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        geom = self.geometry(x.shape[0], x.shape[2:])
        if min(geom.out_hw) < 1:
            raise ValueError(f"{self.name}: input {x.shape[2:]} is too small for this "
                             f"convolution (output {geom.out_hw})")
        self._x, self._geom = x, geom
        self.algorithm.training = bool(training)   # train/infer: tuned and cached apart
        self.algorithm.label = self.name
        return self.algorithm.forward(x, self.params["weight"], self.params.get("bias"), geom)

    def backward(self, dy: np.ndarray) -> Optional[np.ndarray]:
        x, geom = self._x, self._geom
        if x is None:
            raise RuntimeError(f"{self.name}: backward called without a forward")
        self._x = None  # free the activation as soon as it is no longer needed
        return self.algorithm.backward(
            np.ascontiguousarray(dy, dtype=np.float32), x, self.params["weight"], geom,
            need_dx=self.needs_input_grad, dw_out=self.grads["weight"],
            db_out=self.grads.get("bias"))
