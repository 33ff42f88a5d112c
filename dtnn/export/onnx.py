"""ONNX export of a dtnn model, written directly from its layers (no tracing).

Every dtnn layer maps to one or a few standard ONNX operators (opset 17), weights
become initializers, the batch dimension is symbolic (``N``). ``check`` runs the file
in ONNX Runtime on real inputs and compares with dtnn's own forward pass.

======================  ==================================================
dtnn layer              ONNX
======================  ==================================================
conv2d                  Conv (pads, strides, dilations, group)
dense                   Gemm (B = the (in, out) weight as stored)
batchnorm               BatchNormalization (running statistics)
relu / prelu / relu6    Relu / PRelu (slope shaped to broadcast per channel) / Clip
residual / concat       the branches' nodes, then Add / Concat(axis=1)
maxpool2d / avgpool2d   MaxPool / AveragePool (count_include_pad=1)
globalavg/maxpool       GlobalAveragePool / GlobalMaxPool + Flatten
kmaxpool                TopK, TopK (ascending positions), GatherElements
flatten                 Flatten(axis=1)
dropout                 (nothing: identity in inference)
======================  ==================================================
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from dtnn.errors import ConfigError, UserError
from dtnn.io import atomic

OPSET = 17


class _Graph:
    def __init__(self, helper, numpy_helper):
        self.h, self.nh = helper, numpy_helper
        self.nodes: List[Any] = []
        self.inits: List[Any] = []
        self.count = 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, base: str, value: np.ndarray) -> str:
        n = self.name(base)
        self.inits.append(self.nh.from_array(np.ascontiguousarray(value), n))
        return n

    def node(self, op: str, inputs: List[str], base: str, outputs: int = 1, **attrs) -> List[str]:
        outs = [self.name(base) for _ in range(outputs)]
        self.nodes.append(self.h.make_node(op, inputs, outs, name=self.name(op), **attrs))
        return outs


def _pads(p) -> List[int]:
    return [int(p[0]), int(p[1]), int(p[0]), int(p[1])]


def _layer(g: _Graph, i, layer, x: str) -> str:
    kind, tag = layer.registry_name, f"l{i}"
    if kind == "conv2d":
        ins = [x, g.const(f"{tag}_w", layer.params["weight"])]
        if layer.use_bias:
            ins.append(g.const(f"{tag}_b", layer.params["bias"]))
        return g.node("Conv", ins, tag, kernel_shape=list(layer.kernel_size),
                      strides=list(layer.stride), pads=_pads(layer.padding),
                      dilations=list(layer.dilation), group=layer.groups)[0]
    if kind == "dense":
        ins = [x, g.const(f"{tag}_w", layer.params["weight"])]
        if layer.use_bias:
            ins.append(g.const(f"{tag}_b", layer.params["bias"]))
        return g.node("Gemm", ins, tag)[0]
    if kind == "batchnorm":
        ins = [x] + [g.const(f"{tag}_{n}", a) for n, a in (
            ("scale", layer.params["gamma"]), ("bias", layer.params["beta"]),
            ("mean", layer.buffers["running_mean"]), ("var", layer.buffers["running_var"]))]
        return g.node("BatchNormalization", ins, tag, epsilon=layer.eps)[0]
    if kind == "relu":
        return g.node("Relu", [x], tag)[0]
    if kind == "relu6":
        lo, hi = (g.const(f"{tag}_{n}", np.array(v, np.float32)) for n, v in (("lo", 0), ("hi", 6)))
        return g.node("Clip", [x, lo, hi], tag)[0]
    if kind in ("residual", "concat"):
        outs = []
        for b, branch in enumerate(layer.branches):
            y = x
            for j, child in enumerate(branch):
                y = _layer(g, f"{i}_{b}_{j}", child, y)
            outs.append(y)
        if kind == "residual":
            return g.node("Add", outs, tag)[0]
        return g.node("Concat", outs, tag, axis=1)[0]
    if kind == "prelu":
        alpha = layer.params["alpha"]
        extra = len(layer.input_shape) - 1 if alpha.size > 1 else 0
        slope = alpha.reshape((alpha.size,) + (1,) * extra)
        return g.node("PRelu", [x, g.const(f"{tag}_slope", slope)], tag)[0]
    if kind in ("maxpool2d", "avgpool2d"):
        attrs = dict(kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                     pads=_pads(layer.padding))
        if kind == "avgpool2d":
            return g.node("AveragePool", [x], tag, count_include_pad=1, **attrs)[0]
        return g.node("MaxPool", [x], tag, **attrs)[0]
    if kind in ("globalavgpool", "globalmaxpool"):
        op = "GlobalAveragePool" if kind == "globalavgpool" else "GlobalMaxPool"
        return g.node("Flatten", g.node(op, [x], tag), tag, axis=1)[0]
    if kind == "flatten":
        return g.node("Flatten", [x], tag, axis=1)[0]
    if kind == "dropout":
        return x
    if kind == "kmaxpool":
        C = layer.input_shape[0]
        length = int(np.prod(layer.input_shape[1:]))
        k = layer.k_for(length)
        flat = g.node("Reshape", [x, g.const(f"{tag}_shape", np.array([0, C, length],
                                                                     np.int64))], tag)[0]
        kk = g.const(f"{tag}_k", np.array([k], np.int64))
        _, idx = g.node("TopK", [flat, kk], tag, outputs=2, axis=2, largest=1)
        idx_f = g.node("Cast", [idx], tag, to=1)[0]     # ascending positions via TopK
        _, order = g.node("TopK", [idx_f, kk], tag, outputs=2, axis=2, largest=0)
        pos = g.node("GatherElements", [idx, order], tag, axis=2)[0]
        return g.node("GatherElements", [flat, pos], tag, axis=2)[0]
    raise ConfigError(f"layer {i} ({kind}) cannot be exported to ONNX")


def to_onnx(model, name: Optional[str] = None):
    """The ``onnx.ModelProto`` of a built dtnn model (float32, batch dimension 'N')."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise UserError("ONNX export needs the 'onnx' package: pip install onnx") from None
    g = _Graph(helper, numpy_helper)
    x = "input"
    for i, layer in enumerate(model.layers):
        x = _layer(g, i, layer, x)
    out = g.node("Identity", [x], "logits")[0]
    g.nodes[-1].output[0] = "logits"
    del out
    graph = helper.make_graph(
        g.nodes, name or model.name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                       ["N"] + list(model.input_shape))],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                       ["N"] + list(model.output_shape))],
        initializer=g.inits)
    proto = helper.make_model(graph, producer_name="dtnn",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = min(proto.ir_version, 9)
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model, path: str) -> str:
    """Write ``model`` to ``path`` atomically; returns the path."""
    proto = to_onnx(model)
    return atomic.write_bytes(path, proto.SerializeToString())


def ort_session(path: str, threads: int = 1):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("the check needs 'onnxruntime': pip install onnxruntime") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def check(model, path: str, x: np.ndarray) -> Dict[str, Any]:
    """Run the exported file in ONNX Runtime on ``x``; compare with dtnn's forward."""
    ours = model.predict(np.ascontiguousarray(x, np.float32))
    theirs = ort_session(path).run(["logits"], {"input": x.astype(np.float32)})[0]
    diff = float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
    return {"max_abs_diff": diff, "max_abs_output": float(np.max(np.abs(ours))),
            "same_predictions": float(np.mean(ours.argmax(1) == theirs.argmax(1))),
            "samples": int(len(x))}
