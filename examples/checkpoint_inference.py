"""From a checkpoint to predictions: load the model with its class names and input
normalisation, preprocess raw samples exactly as in training, predict.

    python examples/checkpoint_inference.py runs/custom_loop.h5              # Fashion-MNIST test set
    python examples/checkpoint_inference.py runs/x/checkpoint.h5 data.npz    # any source

Works with files from ``dtnn.save`` and from ``dtnn train`` (``<run_dir>/checkpoint.h5``).
"""
import sys

import numpy as np

import dtnn

ckpt = dtnn.load(sys.argv[1] if len(sys.argv) > 1 else "runs/custom_loop.h5")
model, classes, stats = ckpt.model, ckpt.meta["classes"], ckpt.meta["normalization"]
_, raw = dtnn.data.load(sys.argv[2] if len(sys.argv) > 2 else "fashion-mnist", normalize=False)
x = dtnn.data.normalize_array(raw.x, stats) if stats else raw.x    # the training statistics
logits = model.predict(x, batch_size=500)
pred = logits.argmax(axis=1)
print(f"{model.name}: {model.num_params():,} parameters, {ckpt.step} training steps")
print(f"accuracy on {len(pred)} samples: {np.mean(pred == raw.y):.4f}")
p = np.exp(logits - logits.max(axis=1, keepdims=True))
p /= p.sum(axis=1, keepdims=True)
for i in range(5):
    print(f"sample {i}: {classes[pred[i]]} ({p[i, pred[i]]:.1%}), true {classes[raw.y[i]]}")
