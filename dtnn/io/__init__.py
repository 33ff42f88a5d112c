"""Files: HDF5 checkpoints (no pickle), HDF5 state trees, JSON Lines logs and atomic
writes.  Names load lazily, so ``dtnn.io.atomic`` is cheap to import (no h5py)."""
import importlib

_WHERE = {
    "Checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint", "restore_into": "checkpoint",
    "read_config": "checkpoint", "read_meta": "checkpoint",
    "write_tree": "hdf5tree", "read_tree": "hdf5tree",
    "JsonlWriter": "jsonl", "read_jsonl": "jsonl",
}

__all__ = list(_WHERE)


def __getattr__(name):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'dtnn.io' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"dtnn.io.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
