"""Fast inference: a dtnn model compiled into a fused plan.

    from dtnn.infer import InferenceModel
    fast = InferenceModel(model)          # snapshot of the model's weights
    logits = fast(x)                      # x (N, *model.input_shape), float32
    labels = fast.predict(x).argmax(1)    # in batches

Every convolution and dense layer runs with its bias, the BatchNorm after it (folded
into its weights) and its activation in one pass of a direct kernel (or im2col + GEMM
where that is faster, timed once per batch size), written into buffers allocated once;
dropout is gone; everything runs through a compiled executor with no per-layer Python
call (``dtnn.infer.plan``, ``dtnn.infer.steps``; C in ``csrc/infer.c``).  Results equal
the model's own ``forward(x, training=False)`` up to float32 rounding (the tests check
them against it and against the float64 torch twin).

The plan is a snapshot: after the model's weights change, call ``refresh()``.  It is not
thread-safe (its buffers are shared between calls); use one per thread.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from dtnn.infer.plan import KERNELS, Bound, bind
from dtnn.infer.steps import fuse

__all__ = ["InferenceModel", "KERNELS"]


class InferenceModel:
    """``model`` compiled for inference (see the module docstring).

    ``kernel``: "auto" (time the candidate kernels of each convolution once per batch
    size), "heuristic", or one of "px", "ch", "gemm" to force it where it applies.
    ``compiled``: None = the compiled executor if available, False = the numpy twins.
    """

    def __init__(self, model, kernel: str = "auto", compiled: Optional[bool] = None):
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
        self.model, self.kernel, self.compiled = model, kernel, compiled
        self.input_shape = tuple(model.input_shape)
        self.output_shape = tuple(model.output_shape)
        self.refresh()

    def refresh(self) -> None:
        """Fold the model's current weights again (drops every bound batch size)."""
        self.steps = fuse(self.model.layers, self.input_shape)
        self._bound: Dict[int, Bound] = {}

    def bound(self, n: int) -> Bound:
        """The plan bound to batches of ``n`` (bound and tuned on first use)."""
        b = self._bound.get(n)
        if b is None:
            b = self._bound[n] = bind(self.steps, n, self.kernel, self.compiled)
        return b

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits (a new array) for the batch ``x`` (N, *input_shape)."""
        x = np.ascontiguousarray(x, np.float32)
        if x.ndim != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"expected input (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {x.shape}")
        return np.array(self.bound(x.shape[0]).run(x), np.float32, copy=True)

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Logits for ``x`` in batches of ``batch_size`` (like ``Model.predict``)."""
        outs = [self(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        return np.concatenate(outs) if outs else np.zeros((0,) + self.output_shape,
                                                           np.float32)

    def describe(self, n: int = 1) -> str:
        """One line per step of the plan bound to batch ``n``: what it computes, what
        was folded into it and the kernel chosen."""
        from dtnn.infer.describe import describe
        return describe(self.steps, self.bound(n).choices)
