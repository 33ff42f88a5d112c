"""Argument checks that run before any heavy import (numpy, h5py, MPI, torch): a
missing file or an unwritable output is reported in a fraction of a second, as one
line (``UserError``, exit status 2)."""
from __future__ import annotations

import os

from dtnn.errors import ConfigError, DataError


def existing_file(path: str, what: str = "file") -> None:
    if not os.path.exists(path):
        raise DataError(f"{what} {path}: file not found")
    if os.path.isdir(path):
        raise DataError(f"{what} {path}: is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise DataError(f"{what} {path}: not readable")


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def checkpoint_file(path: str) -> None:
    """An existing HDF5 file (the signature is read without importing h5py; a file with
    a user block, signature further in, is left to h5py)."""
    existing_file(path, "checkpoint")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head != HDF5_SIGNATURE:
        import h5py
        if not h5py.is_hdf5(path):
            raise DataError(f"checkpoint {path}: not an HDF5 file")


def writable_output(path: str, option: str) -> None:
    """``path`` can be created or replaced (its directory exists and is writable)."""
    if os.path.isdir(path):
        raise ConfigError(f"{option} {path}: is a directory; give a file name")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ConfigError(f"{option} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (os.path.exists(path)
                                                   and not os.access(path, os.W_OK)):
        raise ConfigError(f"{option} {path}: not writable")


def write_text(path: str, text: str, option: str) -> None:
    """Write ``path`` atomically; an OS error is a one-line ConfigError."""
    from dtnn.engine.rundir import write_text_atomic
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write ({exc.strerror or exc})") from None
