"""On-disk cache of tuning decisions, one JSON file per host / CPU.

Location: ``$DTNN_TUNE_CACHE`` if set, else the ``[tune] cache_dir`` config key, else
``$XDG_CACHE_HOME/dtnn/tune`` (``~/.cache/dtnn/tune``).  The file is named after the
host name and a short hash of the CPU model and flags, so a shared home directory on a
heterogeneous cluster keeps one file per kind of node.  Thread counts are part of the
keys.  Writes are read-merge-replace (atomic rename), so concurrent ranks or runs never
leave a torn file; the last writer of one entry wins.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
from typing import Any, Dict, Hashable, Optional

from dtnn.io import atomic
from dtnn.tune.bestof import key_str


def default_cache_dir(configured: Optional[str] = None) -> str:
    """The decision cache directory: ``configured``, else ``$DTNN_TUNE_CACHE``, else
    ``~/.cache/dtnn/tune``."""
    env = os.environ.get("DTNN_TUNE_CACHE")
    if env:
        return env
    if configured:
        return os.path.expanduser(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dtnn", "tune")


def cpu_tag() -> str:
    text = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("model name", "flags")):
                    text += line
                if line.strip() == "":
                    break
    except OSError:
        text += platform.processor()
    return hashlib.sha1(text.encode()).hexdigest()[:10]


class TuneCache:
    """Decisions on disk, one JSON file per host and CPU model, so later runs skip tuning."""
    def __init__(self, directory: Optional[str] = None):
        self.directory = default_cache_dir(directory) if not directory else directory
        host = socket.gethostname().split(".")[0] or "host"
        self.path = os.path.join(self.directory, f"{host}-{cpu_tag()}.json")
        self._data: Optional[Dict[str, Any]] = None

    def _load(self) -> Dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    @staticmethod
    def entry_key(tuner: str, key: Hashable) -> str:
        return f"{tuner}::{key_str(key)}"

    def get(self, tuner: str, key: Hashable) -> Optional[Dict[str, Any]]:
        """The stored entry of ``key`` for ``tuner``, or None."""
        if self._data is None:
            self._data = self._load()
        return self._data.get(self.entry_key(tuner, key))

    def put(self, tuner: str, key: Hashable, entry: Dict[str, Any]) -> None:
        """Store ``entry`` for ``key`` of ``tuner`` (written at once, atomically)."""
        if self._data is None:
            self._data = self._load()
        k = self.entry_key(tuner, key)
        self._data[k] = entry
        try:
            os.makedirs(self.directory, exist_ok=True)
            merged = self._load()
            merged[k] = entry
            atomic.write_text(self.path, json.dumps(merged, indent=1, sort_keys=True))
        except OSError:
            pass  # a read-only cache directory only costs re-tuning next time
