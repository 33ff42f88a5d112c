"""Checkpoints written on a background thread, from a snapshot.

Writing ``checkpoint.h5`` (HDF5, then fsync of the file and its directory) takes rank 0
tens of milliseconds per save, and under MPI every other rank waits for it at the next
collective.  ``BackgroundWriter`` runs the write on one thread while training goes on:

* the caller hands it a *snapshot* (``ModelSnapshot`` and ``copy_tree``: copies of
  everything the file holds), so the live model can change under the write;
* the file is still written through ``dtnn.io.atomic`` (a temporary file renamed over
  the old one): a crash mid-write leaves the previous checkpoint, never a torn one;
* one write at a time: ``submit`` first waits for the previous write, and ``wait`` (the
  end of training, and anything that must not run ahead of the checkpoint, such as the
  metrics record) waits for the current one;
* an error of the write (disk full) is raised by the next ``submit`` / ``wait`` in the
  caller's thread, as the write itself would have raised it.
"""
from __future__ import annotations

import copy
import threading
from typing import Any, Callable, Dict, Optional

import numpy as np


class ModelSnapshot:
    """A frozen copy of what ``save_checkpoint`` reads from a model (its config, RNG
    states, every layer's parameters and the buffers)."""

    built = True

    def __init__(self, model):
        if not model.built:
            raise ValueError("save_checkpoint: the model is not built")
        self._config = copy.deepcopy(model.get_config())
        self._rng = copy.deepcopy(model.rng_states())
        self.layers = [_Params(layer.params) for layer in model.layers]
        self._buffers = {k: np.array(v, copy=True) for k, v in model.buffers().items()}

    def get_config(self) -> Dict[str, Any]:
        return self._config

    def rng_states(self) -> Any:
        return self._rng

    def buffers(self) -> Dict[str, np.ndarray]:
        return self._buffers


class _Params:
    def __init__(self, params: Dict[str, np.ndarray]):
        self.params = {name: np.array(v, copy=True) for name, v in params.items()}


def copy_tree(tree: Any) -> Any:
    """A copy of a ``write_tree`` dict whose arrays do not share memory with the
    original (strings and numbers are immutable)."""
    if isinstance(tree, dict):
        return {k: copy_tree(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(copy_tree(v) for v in tree)
    if isinstance(tree, np.ndarray):
        return tree.copy()
    return tree


class BackgroundWriter:
    """Runs one write job at a time on a thread (see the module docstring)."""

    def __init__(self, name: str = "dtnn-checkpoint"):
        self.name = name
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None

    def submit(self, job: Callable[[], None]) -> None:
        """Wait for the previous job (raising its error), then start ``job``."""
        self.wait()
        self._thread = threading.Thread(target=self._run, args=(job,), name=self.name)
        self._thread.start()

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:  # raised in the caller's thread by wait()
            self._error = exc

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, raise_error: bool = True) -> None:
        """Block until the current job is done; raise its error, if it failed (unless
        ``raise_error`` is false: the caller is already failing)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            if raise_error:
                raise err
