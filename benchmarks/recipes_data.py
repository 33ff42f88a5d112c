"""Writes the datasets of the recipe campaign (benchmarks/results/recipes.md) as .npz files.

    python benchmarks/recipes_data.py --out /tmp/dtnn-recipes

* ``fmnist8k.npz``: a stratified 8,000-image subset of Fashion-MNIST's training set
  (800 per class, seed 0) and the full 10,000-image test set;
* ``digits28.npz``: scikit-learn's 8x8 handwritten digits upscaled to 28x28 (bilinear,
  Pillow), uint8, split 80/20 stratified (seed 0): 1,437 training and 360 test images.

Both are read with ``data.source = "npz"``.
"""
from __future__ import annotations

import argparse
import os

import numpy as np


def fmnist_subset(n_per_class: int = 800, seed: int = 0):
    from dtnn.data import load_fashion_mnist
    train, test = load_fashion_mnist()
    rng = np.random.default_rng(seed)
    picked = np.concatenate([rng.choice(np.flatnonzero(train.y == c), n_per_class, replace=False)
                             for c in range(train.num_classes)])
    picked.sort()
    to_u8 = lambda x: np.rint(x[:, 0] * 255).astype(np.uint8)  # noqa: E731
    return {"x_train": to_u8(train.x[picked]), "y_train": train.y[picked],
            "x_test": to_u8(test.x), "y_test": test.y}


def digits28(seed: int = 0, test_fraction: float = 0.2):
    from PIL import Image
    from sklearn.datasets import load_digits

    from dtnn.data import Dataset, stratified_split
    bunch = load_digits()
    big = np.stack([np.asarray(Image.fromarray((img / 16.0 * 255).astype(np.float32), mode="F")
                               .resize((28, 28), Image.BILINEAR)) for img in bunch.images])
    x = np.clip(np.rint(big), 0, 255).astype(np.uint8)
    full = Dataset(x[:, None].astype(np.float32), bunch.target, [str(i) for i in range(10)])
    train, test = stratified_split(full, test_fraction, seed)
    return {"x_train": train.x[:, 0].astype(np.uint8), "y_train": train.y,
            "x_test": test.x[:, 0].astype(np.uint8), "y_test": test.y}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="/tmp/dtnn-recipes", help="directory for the .npz files")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, make in (("fmnist8k", fmnist_subset), ("digits28", digits28)):
        path = os.path.join(args.out, f"{name}.npz")
        arrays = make()
        tmp = path + ".tmp.npz"
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
        print(f"{path}: train {arrays['x_train'].shape}, test {arrays['x_test'].shape}")


if __name__ == "__main__":
    main()
