#!/usr/bin/env python
"""Per-layer batch-1 inference time of dtnn models at 1 thread (BestOf settled first):

    python benchmarks/prune/profile_b1.py CHECKPOINT [CHECKPOINT ...]

Where a pruned model's latency goes once the FLOPs are gone: each layer's median time
(us) over 300 passes, and the sum."""
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


if __name__ == "__main__":
    main(sys.argv[1:])
