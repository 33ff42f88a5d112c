"""Store a nested dict of arrays and small values in an HDF5 group, and read it back.

Layout of the group written for a dict:

* ``np.ndarray`` -> a (contiguous) dataset of the same name, dtype and shape;
* numpy scalar (``np.float32(1.5)``) -> a 0-d dataset tagged ``dtnn_kind="scalar"``
  (a plain 0-d array is an untagged 0-d dataset, so the two stay distinct);
* a dict that contains arrays somewhere inside -> a subgroup, recursively;
* anything else (``int``/``float``/``bool``/``str``/``None`` and dicts/lists of those,
  e.g. an RNG state with 128-bit integers) -> a JSON string attribute of the group,
  or, when the JSON is long, a string dataset tagged ``dtnn_kind="json"``.

``read_tree(write_tree(g, t))`` equals ``t`` with exact dtypes and shapes, with two
JSON caveats: tuples come back as lists, and numpy scalars *inside* a JSON value come
back as Python numbers.  Dict keys must be non-empty strings without ``/`` (they
become HDF5 names) unless the dict is stored as JSON.
"""
from __future__ import annotations

import json
from typing import Any, Dict

import h5py
import numpy as np

#: attribute marking datasets that are not plain arrays
KIND_ATTR = "dtnn_kind"
#: JSON longer than this goes to a dataset instead of an attribute (HDF5 attributes in
#: files without dense attribute storage are limited to 64 KiB)
JSON_ATTR_LIMIT = 16 * 1024


def to_jsonable(obj: Any) -> Any:
    """``json.dumps(default=...)`` hook: numpy scalars/arrays to Python values."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot store a {type(obj).__name__} as JSON")


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=to_jsonable, sort_keys=False)


def write_json(group: h5py.Group, name: str, obj: Any) -> None:
    """``obj`` as JSON under ``name``: an attribute, or a tagged dataset if long."""
    text = dumps(obj)
    if len(text) <= JSON_ATTR_LIMIT:
        group.attrs[name] = text
    else:
        ds = group.create_dataset(name, data=text, dtype=h5py.string_dtype())
        ds.attrs[KIND_ATTR] = "json"


def read_json(group: h5py.Group, name: str) -> Any:
    """Inverse of ``write_json``; KeyError if ``name`` is neither attribute nor dataset."""
    if name in group.attrs:
        return json.loads(_as_str(group.attrs[name]))
    if name in group and isinstance(group[name], h5py.Dataset):
        return json.loads(_as_str(group[name][()]))
    raise KeyError(f"'{name}' not found in {group.name}")


def _as_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _as_str(value[()])
    return str(value)


def _contains_array(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return True
    if isinstance(value, dict):
        return any(_contains_array(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_contains_array(v) for v in value)
    return False


def _check_key(key: Any, where: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"{where}: key {key!r} must be a string")
    if not key or "/" in key or key in (".", ".."):
        raise ValueError(f"{where}: key {key!r} cannot be an HDF5 name")
    return key


def _write_array(group: h5py.Group, key: str, arr: np.ndarray) -> h5py.Dataset:
    if arr.dtype.kind in "OUSV" or arr.dtype.hasobject:
        raise TypeError(f"{group.name}/{key}: arrays of dtype {arr.dtype} are not supported")
    return group.create_dataset(key, data=arr)


def write_tree(group: h5py.Group, tree: Dict[str, Any]) -> None:
    """Write the dict ``tree`` into the (empty) HDF5 group ``group``."""
    if not isinstance(tree, dict):
        raise TypeError(f"{group.name}: write_tree needs a dict (got {type(tree).__name__})")
    for key, value in tree.items():
        key = _check_key(key, group.name)
        if isinstance(value, np.ndarray):
            _write_array(group, key, value)
        elif isinstance(value, np.generic):
            ds = _write_array(group, key, np.asarray(value))
            ds.attrs[KIND_ATTR] = "scalar"
        elif isinstance(value, dict) and _contains_array(value):
            write_tree(group.create_group(key, track_order=True), value)
        elif _contains_array(value):
            raise TypeError(f"{group.name}/{key}: arrays inside lists are not supported "
                            "(use a dict of arrays)")
        else:
            try:
                write_json(group, key, value)
            except (TypeError, ValueError) as e:
                raise TypeError(f"{group.name}/{key}: {e}") from None


def read_tree(group: h5py.Group) -> Dict[str, Any]:
    """Read a group written by ``write_tree`` back into a dict (arrays in memory)."""
    out: Dict[str, Any] = {}
    for key, value in group.attrs.items():
        out[key] = json.loads(_as_str(value))
    for key, item in group.items():
        if item is None:  # a link whose target cannot be resolved (damaged file)
            raise ValueError(f"{group.name}/{key}: cannot be read")
        if isinstance(item, h5py.Group):
            out[key] = read_tree(item)
            continue
        kind = _as_str(item.attrs[KIND_ATTR]) if KIND_ATTR in item.attrs else None
        if kind == "json":
            out[key] = json.loads(_as_str(item[()]))
        elif kind == "scalar":
            out[key] = item[()]
        else:
            data = item[()]
            out[key] = data if isinstance(data, np.ndarray) else np.asarray(data, item.dtype)
    return out
