"""The content digest of an HDF5 file: a BLAKE2b hash of every object under the root
(sorted paths, attributes, dtypes, shapes and bytes), stored as the root attribute
``content_digest``.  HDF5 itself checksums neither raw data nor string heaps, so
without it a flipped bit in a checkpoint could load silently."""
from __future__ import annotations

import hashlib
from typing import Any

import h5py
import numpy as np

DIGEST_ATTR = "content_digest"


def _hash_value(h, value: Any) -> None:
    """Feed one attribute value or dataset content to ``h``, unambiguously."""
    if isinstance(value, str):
        tag, data = b"s", value.encode("utf-8")
    elif isinstance(value, bytes):
        tag, data = b"b", value
    else:
        arr = np.asarray(value)
        if arr.dtype.hasobject:  # variable-length strings
            parts = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in arr.ravel()]
            tag = b"o" + repr(arr.shape).encode()
            data = b"".join(len(p).to_bytes(8, "little") + p for p in parts)
        else:
            tag = b"a" + arr.dtype.str.encode() + repr(arr.shape).encode()
            data = np.ascontiguousarray(arr).tobytes()
    h.update(tag + len(data).to_bytes(8, "little"))
    h.update(data)


def content_digest(f: h5py.File) -> str:
    """Hash of every object under ``f`` (sorted paths, attributes, data), excluding
    the digest attribute itself."""
    h = hashlib.blake2b(digest_size=20)
    names = []
    f.visit(names.append)
    for path in [""] + sorted(names):
        obj = f[path] if path else f
        if obj is None:
            raise OSError(f"object '{path}' cannot be read")
        is_group = isinstance(obj, h5py.Group)
        _hash_value(h, ("G:" if is_group else "D:") + path)
        for key in sorted(obj.attrs):
            if path == "" and key == DIGEST_ATTR:
                continue
            _hash_value(h, key)
            _hash_value(h, obj.attrs[key])
        if not is_group:
            _hash_value(h, obj[()])
    return h.hexdigest()
