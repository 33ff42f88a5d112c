"""Training checkpoints in HDF5 (no pickle), written atomically.

File layout (every name is readable with ``h5dump``/``h5ls``)::

    /                        attrs: format="dtnn-checkpoint", format_version, dtnn_version,
                                    step, epoch (integers), meta (JSON), content_digest
    /model                   attrs: config (JSON of Model.get_config()),
                                    rng_states (JSON of Model.rng_states())
    /model/params/<i>/<name>     float32 datasets, one per parameter of layer i
    /model/buffers/<i>/<name>    non-trainable buffers (BatchNorm running statistics)
    /states/<name>/...           named state trees ("optimizer", "compressor", "data", ...)
                                 written with dtnn.io.hdf5tree.write_tree

``content_digest`` is a BLAKE2b hash of everything else in the file (every object's
path, attributes, dtype, shape and bytes), checked by ``load_checkpoint`` and
``restore_into``: HDF5 itself does not checksum raw data or string heaps, so without
it a flipped bit could load silently.  Every problem reading a checkpoint surfaces as
a one-line ``DataError`` naming the file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import h5py
import numpy as np

from dtnn.errors import ConfigError, DataError
from dtnn.parallel import interrupts
from dtnn.io import atomic
from dtnn.io.atomic import remove_stale_temp_files  # noqa: F401  (public here too)
from dtnn.io.digest import DIGEST_ATTR, content_digest
from dtnn.io.hdf5tree import read_json, read_tree, write_json, write_tree
from dtnn.models.model import Model

FORMAT = "dtnn-checkpoint"
FORMAT_VERSION = 1
#: oldest HDF5 file format we write: 1.8 (checksummed metadata, large attributes),
#: readable by any HDF5 >= 1.8
_LIBVER = ("v108", "v108")


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` / ``restore_into`` return."""
    model: Model
    step: int
    epoch: int
    states: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    meta: Dict[str, Any] = field(default_factory=dict)
    path: str = ""


# --- content digest --------------------------------------------------------------------
# --- writing -----------------------------------------------------------------------------
def _write_contents(f: h5py.File, model: Model, step: int, epoch: int,
                    states: Dict[str, Dict[str, Any]], meta: Dict[str, Any]) -> None:
    from dtnn import __version__

    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["dtnn_version"] = __version__
    f.attrs["step"] = np.int64(step)
    f.attrs["epoch"] = np.int64(epoch)
    write_json(f, "meta", meta)

    g_model = f.create_group("model")
    write_json(g_model, "config", model.get_config())
    write_json(g_model, "rng_states", model.rng_states())
    g_params = g_model.create_group("params", track_order=True)
    for i, layer in enumerate(model.layers):
        if not layer.params:
            continue
        g = g_params.create_group(str(i), track_order=True)
        for name, value in layer.params.items():
            g.create_dataset(name, data=value)
    g_buffers = g_model.create_group("buffers", track_order=True)
    for key, value in model.buffers().items():
        i, name = key.split("/", 1)
        g = g_buffers.require_group(i)
        g.create_dataset(name, data=np.asarray(value))

    g_states = f.create_group("states", track_order=True)
    for name, tree in states.items():
        if not isinstance(tree, dict):
            raise TypeError(f"checkpoint state '{name}' must be a dict "
                            f"(got {type(tree).__name__})")
        write_tree(g_states.create_group(name, track_order=True), tree)


def save_checkpoint(path: str, model: Model, *, step: int, epoch: int,
                    states: Optional[Dict[str, Dict[str, Any]]] = None,
                    meta: Optional[Dict[str, Any]] = None) -> str:
    """Write a checkpoint to ``path`` atomically and return ``path``.

    The file is written through ``dtnn.io.atomic.atomic_path`` (a temporary file
    next to ``path``, fsynced and renamed over it); if anything fails the temporary
    file is removed and an existing checkpoint at ``path`` is left untouched.  ``states`` maps names to dicts
    for ``write_tree``; ``meta`` must be JSON-able (numpy values are converted).
    """
    states = {} if states is None else states
    meta = {} if meta is None else meta
    if not model.built:
        raise ValueError("save_checkpoint: the model is not built")
    # SIGINT/SIGTERM wait until the file is complete (an interrupt raised inside h5py's
    # weakref callbacks was swallowed, and training went on), then raise
    with interrupts.deferred():
        with atomic.atomic_path(path, durable=True) as tmp:
            with h5py.File(tmp, "w", libver=_LIBVER, track_order=True) as f:
                _write_contents(f, model, int(step), int(epoch), states, meta)
                f.attrs[DIGEST_ATTR] = content_digest(f)
                f.flush()
    return path


# --- reading -----------------------------------------------------------------------------
def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


class _Reader:
    """Reads one open checkpoint; every failure becomes DataError naming the file."""

    def __init__(self, path: str, f: h5py.File):
        self.path, self.f = path, f

    def fail(self, problem: str) -> DataError:
        return DataError(f"checkpoint {self.path}: {problem}")

    def group(self, name: str) -> h5py.Group:
        item = self.f.get(name)
        if not isinstance(item, h5py.Group):
            raise self.fail(f"missing group '/{name}' (incomplete or not a dtnn checkpoint)")
        return item

    def json(self, group: h5py.Group, name: str, default: Any = None) -> Any:
        try:
            return read_json(group, name)
        except KeyError:
            if default is not None:
                return default
            raise self.fail(f"missing '{group.name.rstrip('/')}/{name}'") from None
        except ValueError as e:
            raise self.fail(f"'{group.name.rstrip('/')}/{name}' is not valid JSON "
                            f"({_one_line(e)})") from None

    def header(self) -> tuple:
        fmt = self.f.attrs.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode()
        if fmt != FORMAT:
            raise self.fail("not a dtnn checkpoint (no 'format' attribute)")
        version = int(self.f.attrs.get("format_version", -1))
        if version > FORMAT_VERSION:
            raise self.fail(f"format version {version} is newer than this dtnn "
                            f"understands ({FORMAT_VERSION}); upgrade dtnn")
        try:
            return int(self.f.attrs["step"]), int(self.f.attrs["epoch"])
        except (KeyError, TypeError, ValueError):
            raise self.fail("missing or invalid 'step'/'epoch' attributes") from None

    def verify(self) -> None:
        """Compare the stored content digest with the file's contents."""
        stored = self.f.attrs.get(DIGEST_ATTR)
        if stored is None:
            raise self.fail("missing content digest (incomplete or damaged file)")
        if isinstance(stored, bytes):
            stored = stored.decode("ascii", "replace")
        if content_digest(self.f) != stored:
            raise self.fail("content digest mismatch: the file is corrupt")

    def config(self) -> Dict[str, Any]:
        config = self.json(self.group("model"), "config")
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise self.fail("'/model/config' is not a model configuration")
        return config

    def _array(self, group: h5py.Group, name: str, shape: tuple, what: str) -> np.ndarray:
        item = group.get(name)
        where = f"{group.name}/{name}"
        if not isinstance(item, h5py.Dataset):
            raise self.fail(f"missing {what} '{where}'")
        if tuple(item.shape) != tuple(shape):
            raise self.fail(f"{what} '{where}' has shape {tuple(item.shape)} but the model "
                            f"expects {tuple(shape)}")
        return item[()]

    def load_weights(self, model: Model, rng: bool = True) -> None:
        """Read and check everything first, then copy: a bad file leaves ``model``
        unchanged."""
        copies = []
        g_params = self.group("model/params")
        expected = {str(i) for i, layer in enumerate(model.layers) if layer.params}
        extra = sorted(set(g_params) - expected)
        if extra:
            raise self.fail(f"'/model/params/{extra[0]}' has no matching layer with "
                            "parameters in the model")
        for i, layer in enumerate(model.layers):
            if not layer.params:
                continue
            g = g_params.get(str(i))
            if not isinstance(g, h5py.Group):
                raise self.fail(f"missing group '/model/params/{i}'")
            names = sorted(set(g) - set(layer.params))
            if names:
                raise self.fail(f"'/model/params/{i}/{names[0]}' is not a parameter of "
                                f"layer {i} ({layer.registry_name})")
            for name, target in layer.params.items():
                copies.append((target, self._array(g, name, target.shape, "parameter")))
        buffers = model.buffers()
        buffer_values = {}
        if buffers:
            g_buffers = self.group("model/buffers")
            for key, target in buffers.items():
                i, name = key.split("/", 1)
                g = g_buffers.get(i)
                if not isinstance(g, h5py.Group):
                    raise self.fail(f"missing group '/model/buffers/{i}'")
                buffer_values[key] = self._array(g, name, np.shape(target), "buffer")
        rng_states = self.json(self.group("model"), "rng_states", default={}) if rng else None
        if rng_states is not None and not isinstance(rng_states, dict):
            raise self.fail("'/model/rng_states' is not a dict")
        for target, value in copies:
            np.copyto(target, value)
        model.load_buffers(buffer_values)
        if rng_states:
            try:
                model.set_rng_states(rng_states)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
                raise self.fail(f"invalid '/model/rng_states' ({_one_line(e)})") from None

    def states(self) -> Dict[str, Dict[str, Any]]:
        g = self.f.get("states")
        if g is None:
            return {}
        if not isinstance(g, h5py.Group):
            raise self.fail("'/states' is not a group")
        out = {}
        for name, item in g.items():
            if not isinstance(item, h5py.Group):
                raise self.fail(f"'/states/{name}' is not a group")
            try:
                out[name] = read_tree(item)
            except ValueError as e:
                raise self.fail(f"'/states/{name}' is damaged ({_one_line(e)})") from None
        return out

    def meta(self) -> Dict[str, Any]:
        return self.json(self.f, "meta", default={})


def _open(path: str) -> h5py.File:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"checkpoint {path}: file not found")
    if os.path.isdir(path):
        raise DataError(f"checkpoint {path}: is a directory, not a checkpoint file")
    if not h5py.is_hdf5(path):
        raise DataError(f"checkpoint {path}: not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"checkpoint {path}: cannot open, the file is truncated or "
                        f"corrupt ({_one_line(e)})") from None


def _read(path: str, work) -> Any:
    """Open ``path`` and run ``work(reader)``; low-level read errors become DataError."""
    path = os.fspath(path)
    f = _open(path)
    try:
        with f:
            return work(_Reader(path, f))
    except DataError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError) as e:
        # h5py reports checksum failures, truncation and damaged objects this way
        raise DataError(f"checkpoint {path}: damaged file ({_one_line(e)})") from None


def read_config(path: str) -> Dict[str, Any]:
    """Just the model configuration stored in checkpoint ``path`` (cheap: the content
    digest is not checked)."""
    return _read(path, lambda r: (r.header(), r.config())[1])


def read_meta(path: str) -> Dict[str, Any]:
    """Just the ``meta`` dict stored in checkpoint ``path`` (cheap: no arrays read and
    the content digest is not checked)."""
    return _read(path, lambda r: (r.header(), r.meta())[1])


def load_checkpoint(path: str, seed: int = 0) -> Checkpoint:
    """Rebuild the model from the file alone (``Model.from_config`` with ``seed``, then
    weights, buffers and RNG states) and return it with step, epoch, states and meta."""
    import dtnn.layers  # noqa: F401  (registers the layer types named in the config)

    def work(r: _Reader) -> Checkpoint:
        step, epoch = r.header()
        r.verify()
        config = r.config()
        try:
            model = Model.from_config(config, seed=seed)
        except (ConfigError, KeyError, TypeError, ValueError) as e:
            raise r.fail(f"cannot rebuild the model from '/model/config' "
                         f"({_one_line(e)})") from None
        r.load_weights(model)
        return Checkpoint(model, step, epoch, r.states(), r.meta(), os.fspath(path))

    ckpt = _read(path, work)
    if "compressor" in ckpt.states:   # per-rank shards read back as rank<R> entries
        from dtnn.io.shards import resolve
        ckpt.states["compressor"] = resolve(os.fspath(path), ckpt.states["compressor"])
    return ckpt


def _config_difference(saved: Dict[str, Any], current: Dict[str, Any]) -> Optional[str]:
    """A short description of why ``current`` cannot take ``saved``'s weights."""
    if list(saved.get("input_shape", [])) != list(current.get("input_shape", [])):
        return (f"input shape {tuple(saved.get('input_shape', []))} in the checkpoint, "
                f"{tuple(current.get('input_shape', []))} in the model")
    a, b = saved.get("layers", []), current.get("layers", [])
    if len(a) != len(b):
        return f"{len(a)} layers in the checkpoint, {len(b)} in the model"
    for i, (x, y) in enumerate(zip(a, b)):
        if x.get("type") != y.get("type") or _canon(x.get("config")) != _canon(y.get("config")):
            return (f"layer {i} is {x.get('type')}({_canon(x.get('config'))}) in the "
                    f"checkpoint but {y.get('type')}({_canon(y.get('config'))}) in the model")
    return None


def _canon(obj: Any) -> str:
    import json

    return json.dumps(obj, sort_keys=True, default=str)


def restore_into(path: str, model: Model, *, rng: bool = True) -> Checkpoint:
    """Load checkpoint ``path`` into the existing (built) ``model``.

    The architecture must match (same input shape and layer types/configs; the model
    name and ``arch`` metadata may differ), otherwise DataError says what differs.
    ``rng=False`` keeps the model's own RNG streams (e.g. per-rank dropout streams).
    Returns a Checkpoint whose ``model`` is ``model``.
    """
    if not model.built:
        raise ValueError("restore_into: the model is not built")

    def work(r: _Reader) -> Checkpoint:
        step, epoch = r.header()
        r.verify()
        saved = r.config()
        problem = _config_difference(saved, model.get_config())
        if problem:
            raise r.fail(f"saved for a different model: {problem}")
        r.load_weights(model, rng=rng)
        return Checkpoint(model, step, epoch, r.states(), r.meta(), os.fspath(path))

    return _read(path, work)
