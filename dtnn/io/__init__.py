"""Files: HDF5 checkpoints (no pickle), HDF5 state trees and JSON Lines logs."""
from dtnn.io.checkpoint import (Checkpoint, load_checkpoint, read_config, read_meta,
                                restore_into, save_checkpoint)
from dtnn.io.hdf5tree import read_tree, write_tree
from dtnn.io.jsonl import JsonlWriter, read_jsonl

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "restore_into", "read_config",
           "read_meta", "write_tree", "read_tree", "JsonlWriter", "read_jsonl"]
