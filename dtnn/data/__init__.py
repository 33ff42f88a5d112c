"""Datasets, loaders, preprocessing and mini-batching.

    train, test = dtnn.data.load("fashion-mnist")       # standardised, stats in .meta
    for xb, yb in dtnn.data.loader(train, 64, ctx=ctx).epoch(e): ...

The pieces underneath:

    from dtnn.data import load_dataset, normalize, stratified_split, BatchLoader, Augment

    train, test = load_dataset("fashion-mnist")
    train, val = stratified_split(train, 0.1, seed=0)
    stats = normalize(train, val, test)           # in place; store stats with the model
    loader = BatchLoader(train, 64, seed=0, rank=r, world_size=w, augment=Augment(shift=2))
    for xb, yb in loader.epoch(e): ...

Sources (``DATASETS.names()``): idx, fashion-mnist, npz, hdf5, digits, synthetic.
"""
from dtnn.data.api import Splits, load, load_splits, loader, resolve_source
from dtnn.data.augment import Augment
from dtnn.data.dataset import (DATASETS, NORMALIZE_MODES, Dataset, apply_normalization,
                               compute_stats, load_dataset, normalize, normalize_array,
                               stratified_split)
from dtnn.data.digits import load_digits
from dtnn.data.hdf5 import load_hdf5, save_hdf5
from dtnn.data.idx import (FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, load_fashion_mnist,
                           load_idx, read_idx_images, read_idx_labels, write_idx)
from dtnn.data.loader import BatchLoader, epoch_permutation, shard, shard_range
from dtnn.data.npz import load_npz, save_npz
from dtnn.data.synthetic import load_synthetic

__all__ = [
    "load", "load_splits", "loader", "resolve_source", "Splits", "Augment", "BatchLoader", "DATASETS", "Dataset", "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR", "NORMALIZE_MODES", "apply_normalization", "compute_stats",
    "epoch_permutation", "load_dataset", "load_digits", "load_fashion_mnist", "load_hdf5",
    "load_idx", "load_npz", "load_synthetic", "normalize", "normalize_array", "read_idx_images",
    "read_idx_labels", "save_hdf5", "save_npz", "shard", "shard_range", "stratified_split",
    "write_idx",
]
