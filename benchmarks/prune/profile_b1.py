#!/usr/bin/env python
"""Per-layer batch-1 inference time of dtnn models at 1 thread:

    python benchmarks/prune/profile_b1.py CHECKPOINT [CHECKPOINT ...]

Where a pruned model's latency goes once the FLOPs are gone.  Two tables per model:
the layer-by-layer path (``Model.forward``, BestOf settled first): each layer's median
time (us) over 300 passes, and the sum; and the fused inference plan
(``dtnn.infer.InferenceModel``, what ``dtnn bench infer``'s dtnn row runs): each step's
median time run alone through the compiled executor, the sum, and the whole plan's
median in one executor call (the difference is the per-step overhead)."""
import sys
import time

import dtnn  # noqa: F401  -- first (OpenBLAS spin time)
import numpy as np


def main(paths):
    from dtnn.conv import CONV_ALGORITHMS
    from dtnn.io.checkpoint import load_checkpoint
    from dtnn.prune.cost import layer_flops, settle_tuning
    from dtnn.threads import set_threads
    set_threads(1)
    for path in paths:
        model = load_checkpoint(path).model
        for layer in model.layers:
            if layer.registry_name == "conv2d":
                layer.algorithm = CONV_ALGORITHMS.get("bestof")()
        x = np.random.default_rng(0).standard_normal((1,) + model.input_shape).astype(np.float32)
        settle_tuning(lambda v: model.forward(v), x)
        times = np.zeros((300, len(model.layers)))
        for r in range(300):
            h = x
            for i, layer in enumerate(model.layers):
                t0 = time.perf_counter()
                h = layer.forward(h, False)
                times[r, i] = time.perf_counter() - t0
        med = np.median(times, axis=0) * 1e6
        print(f"\n{path}: sum of per-layer medians {med.sum():.0f} us")
        print("| layer | us | kFLOPs |\n|---|---:|---:|")
        for i, (layer, t) in enumerate(zip(model.layers, med)):
            print(f"| {i}:{layer.describe()} | {t:.1f} | {layer_flops(layer) / 1e3:.0f} |")
        fused(model, x)


def fused(model, x, reps=300):
    from dtnn.infer import InferenceModel
    from dtnn.infer import kernels as K
    from dtnn.infer.describe import _line
    fast = InferenceModel(model)
    bound = fast.bound(1)
    ex = K.executor()
    inputs, h = [], x
    for op in bound.ops:           # each step's own input, from one pass
        inputs.append(h)
        h = ex.run([op], h) if ex else op(h)
        h = h.copy()
    times = np.zeros((reps, len(bound.ops)))
    whole = np.zeros(reps)
    for r in range(reps):
        for i, op in enumerate(bound.ops):
            t0 = time.perf_counter()
            ex.run([op], inputs[i]) if ex else op(inputs[i])
            times[r, i] = time.perf_counter() - t0
        t0 = time.perf_counter()
        bound.run(x)
        whole[r] = time.perf_counter() - t0
    med = np.median(times, axis=0) * 1e6
    print(f"\nfused plan: sum of per-step medians {med.sum():.0f} us, whole plan in one "
          f"executor call {np.median(whole) * 1e6:.0f} us")
    print("| step | us |\n|---|---:|")
    for step, t in zip(fast.steps, med):
        print(f"| {_line(step, bound.choices)} | {t:.1f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
