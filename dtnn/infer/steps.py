"""The steps of a fused inference plan, before they are bound to a batch size.

``fuse(layers, input_shape)`` turns a model's layers into a list of steps:

* ``ConvStep``: a convolution (groups 1) or a dense layer with everything that follows
  it and is linear or element-wise per channel folded in -- its bias, an inference-mode
  BatchNorm (scale and shift folded into the filters and bias, in float64) and a ReLU /
  ReLU6 / PReLU applied to the accumulators before the one store of each output;
* ``AffineStep``: a BatchNorm that follows no convolution, or a lone activation;
* ``PoolStep`` (max pooling), ``ReshapeStep`` (Flatten: a view), ``BlockStep``
  (residual / concat blocks, their branches fused alike), ``LayerStep`` (any other
  layer, run by the layer's own inference forward);
* dropout disappears (the identity at inference).

Steps hold their own copies of the folded weights: a plan is a snapshot of the model
taken when it was built (``InferenceModel.refresh`` takes a new one).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from dtnn.infer.kernels import ACT_NONE, ACT_PRELU, ACTIVATIONS

Shape = Tuple[int, ...]


@dataclass
class ConvStep:
    """y = act(conv(x, w) + b); a dense layer is the 1x1 case on a (F, 1, 1) input."""
    name: str
    w: np.ndarray                 # (K, C, R, S) float32, BatchNorm folded in
    b: np.ndarray                 # (K,) float32
    act: int
    alpha: Optional[np.ndarray]   # (K,) for PReLU
    stride: Tuple[int, int]
    padding: Tuple[int, int]
    dilation: Tuple[int, int]
    in_shape: Shape               # (C, H, W), or (F,) for a dense layer
    out_shape: Shape              # (K, Ho, Wo), or (units,)
    dense: bool = False
    fused: List[str] = field(default_factory=list)   # the layers folded in


@dataclass
class AffineStep:
    """y = act(x * scale + shift) per channel (scale / shift None: 1 / 0)."""
    name: str
    scale: Optional[np.ndarray]
    shift: Optional[np.ndarray]
    act: int
    alpha: Optional[np.ndarray]
    shape: Shape
    fused: List[str] = field(default_factory=list)


@dataclass
class PoolStep:
    name: str
    kernel: Tuple[int, int]
    stride: Tuple[int, int]
    padding: Tuple[int, int]
    in_shape: Shape
    out_shape: Shape


@dataclass
class ReshapeStep:
    name: str
    out_shape: Shape


@dataclass
class LayerStep:
    """Any other layer: ``layer.forward(x, training=False)``."""
    name: str
    layer: object
    out_shape: Shape


@dataclass
class BlockStep:
    name: str
    concat: bool
    branches: List[list]
    out_shape: Shape


def _act_of(layer, channels: int) -> Tuple[int, Optional[np.ndarray]]:
    """(act code, per-channel alpha) of an activation layer, or (ACT_NONE, None)."""
    kind = getattr(layer, "registry_name", None)
    if kind not in ACTIVATIONS:
        return ACT_NONE, None
    if kind != "prelu":
        return ACTIVATIONS[kind], None
    a = np.asarray(layer.params["alpha"], np.float32).ravel()
    return ACT_PRELU, np.ascontiguousarray(np.broadcast_to(a, (channels,)), np.float32)


def _bn_affine(layer) -> Tuple[np.ndarray, np.ndarray]:
    """Inference BatchNorm as y = x * scale + shift (float64)."""
    gamma = layer.params["gamma"].astype(np.float64)
    beta = layer.params["beta"].astype(np.float64)
    mean = layer.buffers["running_mean"].astype(np.float64)
    var = layer.buffers["running_var"].astype(np.float64)
    scale = gamma / np.sqrt(var + layer.eps)
    return scale, beta - mean * scale


def _kind(layer) -> Optional[str]:
    return getattr(layer, "registry_name", None)


def _take_epilogue(layers: Sequence, j: int, channels: int, allow_bn: bool):
    """Fold what follows at ``layers[j:]``: an optional BatchNorm (``allow_bn``), then an
    optional activation.  Returns (scale, shift, act, alpha, names, next index)."""
    scale = shift = None
    names: List[str] = []
    if allow_bn and j < len(layers) and _kind(layers[j]) == "batchnorm":
        scale, shift = _bn_affine(layers[j])
        names.append(layers[j].name)
        j += 1
    act, alpha = ACT_NONE, None
    if j < len(layers):
        act, alpha = _act_of(layers[j], channels)
        if act != ACT_NONE:
            names.append(layers[j].name)
            j += 1
    return scale, shift, act, alpha, names, j


def _conv_step(layer, layers, i) -> Tuple[ConvStep, int]:
    w = layer.params["weight"].astype(np.float64)
    K = w.shape[0]
    b = (layer.params["bias"].astype(np.float64) if "bias" in layer.params
         else np.zeros(K, np.float64))
    scale, shift, act, alpha, names, j = _take_epilogue(layers, i + 1, K, allow_bn=True)
    if scale is not None:
        w = w * scale.reshape(-1, 1, 1, 1)
        b = b * scale + shift
    step = ConvStep(layer.name, np.ascontiguousarray(w, np.float32), b.astype(np.float32),
                    act, alpha, tuple(layer.stride), tuple(layer.padding),
                    tuple(layer.dilation), tuple(layer.input_shape),
                    tuple(layer.output_shape), fused=names)
    return step, j


def _dense_step(layer, layers, i) -> Tuple[ConvStep, int]:
    w = layer.params["weight"].astype(np.float64)            # (F, units)
    F, units = w.shape
    b = (layer.params["bias"].astype(np.float64) if "bias" in layer.params
         else np.zeros(units, np.float64))
    scale, shift, act, alpha, names, j = _take_epilogue(layers, i + 1, units, allow_bn=True)
    if scale is not None:
        w = w * scale.reshape(1, -1)
        b = b * scale + shift
    step = ConvStep(layer.name, np.ascontiguousarray(w.T.reshape(units, F, 1, 1), np.float32),
                    b.astype(np.float32), act, alpha, (1, 1), (0, 0), (1, 1), (F,), (units,),
                    dense=True, fused=names)
    return step, j


def fuse(layers: Sequence, input_shape: Shape) -> list:
    """The steps of ``layers`` (built, inference mode) on per-sample ``input_shape``."""
    steps: list = []
    shape = tuple(int(d) for d in input_shape)
    i = 0
    while i < len(layers):
        layer = layers[i]
        kind = _kind(layer)
        if kind == "conv2d" and layer.groups == 1:
            step, i = _conv_step(layer, layers, i)
        elif kind == "dense":
            step, i = _dense_step(layer, layers, i)
        elif kind == "batchnorm" or kind in ACTIVATIONS:
            C = shape[0]
            scale, shift, act, alpha, names, i = _take_epilogue(layers, i, C, allow_bn=True)
            step = AffineStep(layer.name,
                              None if scale is None else scale.astype(np.float32),
                              None if shift is None else shift.astype(np.float32),
                              act, alpha, shape, fused=names)
        elif kind == "dropout":
            i += 1
            continue
        elif kind == "flatten":
            step, i = ReshapeStep(layer.name, tuple(layer.output_shape)), i + 1
        elif kind == "maxpool2d":
            step = PoolStep(layer.name, tuple(layer.kernel_size), tuple(layer.stride),
                            tuple(layer.padding), shape, tuple(layer.output_shape))
            i += 1
        elif kind in ("residual", "concat"):
            branches = [fuse(br, shape) for br in layer.branches]
            step, i = BlockStep(layer.name, kind == "concat", branches,
                                tuple(layer.output_shape)), i + 1
        else:   # grouped / depthwise convolutions, average and k-max pooling, ...
            steps.append(LayerStep(layer.name, layer, tuple(layer.output_shape)))
            shape = tuple(layer.output_shape)
            i += 1
            if kind == "conv2d":   # its BatchNorm / activation still fold into one pass
                C = shape[0]
                scale, shift, act, alpha, names, i = _take_epilogue(layers, i, C, True)
                if names:
                    steps.append(AffineStep(
                        "+".join(names), None if scale is None else scale.astype(np.float32),
                        None if shift is None else shift.astype(np.float32), act, alpha,
                        shape, fused=names))
            continue
        steps.append(step)
        shape = _out_shape(step)
    return steps


def _out_shape(step) -> Shape:
    if isinstance(step, AffineStep):
        return step.shape
    return step.out_shape
