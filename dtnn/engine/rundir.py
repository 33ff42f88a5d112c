"""Run directories: one run per directory, nothing written before validation.

Rules (``dtnn train``; the library's ``engine.session.train`` follows them too):

* a new run needs an empty (or missing) directory.  A non-empty one is refused with a
  one-line error unless ``--resume`` (continue the run whose checkpoint is given) or
  ``--overwrite`` (start afresh: the files dtnn writes are deleted once everything is
  validated; other files are left alone);
* the path must be a directory we can create and write: a file, a read-only or
  otherwise unwritable location is a one-line error, found before any data is loaded;
* nothing is written (not even the directory) until configuration, checkpoint and
  data have been validated;
* on start, temporary checkpoint files of writers that died mid-save
  (``.checkpoint.h5.tmp-<host>-<pid>``) are removed;
* on resume, ``metrics.jsonl`` is cut back to the records at or before the
  checkpoint's step (a crash after a metrics line but before its checkpoint, or
  between checkpoints, left lines the resumed run writes again); the epoch line is
  written after its checkpoint, so an uninterrupted record never runs ahead of it.

Only rank 0 writes; other ranks hold an inactive twin.
"""
from __future__ import annotations

import errno
import json
import os
from typing import List, Optional

from dtnn.errors import ConfigError
from dtnn.io import atomic

#: what ``dtnn train`` writes into a run directory (``--overwrite`` deletes these)
RUN_FILES = ("config.toml", "model.txt", "metrics.jsonl", "checkpoint.h5", "best.h5",
             "report.json", "confusion.txt", "curves.png", "tuning.json", "tuning.txt")
def _is_temp(name: str) -> bool:
    return name.startswith(".") and atomic.TEMP_MARK in name


def _nearest_existing(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def check_run_dir(path: str, *, resume: bool = False, overwrite: bool = False) -> None:
    """Validate ``output.run_dir`` without writing anything (ConfigError, one line)."""
    if not path:
        raise ConfigError("output.run_dir is empty: give a directory (--run-dir DIR)")
    where = f"run directory {path}"
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"{where}: exists and is not a directory")
    base = _nearest_existing(path)
    if not os.path.isdir(base):
        raise ConfigError(f"{where}: cannot be created, {base} is not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        what = "is not writable" if base == os.path.abspath(path) else f"cannot be " \
               f"created ({base} is not writable)"
        raise ConfigError(f"{where}: {what}")
    if os.path.isdir(path):
        try:
            entries = [e for e in os.listdir(path) if not _is_temp(e)]
        except OSError as exc:
            raise ConfigError(f"{where}: cannot be read ({exc.strerror})") from None
        if entries and not (resume or overwrite):
            shown = ", ".join(sorted(entries)[:4]) + (", ..." if len(entries) > 4 else "")
            raise ConfigError(f"{where}: not empty ({shown}); continue its run with "
                              f"--resume {os.path.join(path, 'checkpoint.h5')}, start "
                              "afresh with --overwrite, or choose another --run-dir")


class RunDirectory:
    """Rank 0 writes; other ranks hold a do-nothing twin.  ``prepare()`` is the first
    write, made after validation."""

    def __init__(self, path: str, active: bool):
        self.path, self.active = path, active

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def prepare(self, *, overwrite: bool = False, resume_step: Optional[int] = None) -> None:
        """Create the directory, delete dead writers' temporary files, clear an
        overwritten run, cut metrics back to a resumed checkpoint."""
        if not self.active:
            return
        from dtnn.io.atomic import remove_stale_temp_files
        try:
            os.makedirs(self.path, exist_ok=True)
            for name in ("checkpoint.h5", "best.h5"):
                remove_stale_temp_files(self.file(name))
            if overwrite and resume_step is None:
                for name in RUN_FILES:
                    if os.path.lexists(self.file(name)):
                        os.remove(self.file(name))
            if resume_step is not None:
                truncate_metrics(self.file("metrics.jsonl"), resume_step)
        except OSError as exc:
            raise self.error(exc) from None

    def write_text(self, name: str, text: str) -> None:
        """Write ``name`` atomically (a temporary file renamed into place)."""
        if not self.active:
            return
        try:
            write_text_atomic(self.file(name), text)
        except OSError as exc:
            raise self.error(exc, self.file(name)) from None

    def error(self, exc: OSError, target: Optional[str] = None) -> ConfigError:
        what = exc.strerror or str(exc)
        if exc.errno == errno.ENOSPC:
            what = "no space left on the device"
        return ConfigError(f"run directory {self.path}: cannot write "
                           f"{os.path.basename(target) if target else 'to it'} ({what})")


def write_text_atomic(path: str, text: str) -> None:
    """Write ``path`` through a temporary file renamed over it (``dtnn.io.atomic``):
    readers see the old or the new content, never a part.  Raises OSError."""
    atomic.write_text(path, text)


def truncate_metrics(path: str, step: int) -> List[dict]:
    """Keep the records of ``path`` whose ``step`` is <= ``step`` (atomic rewrite);
    returns the dropped records.  Records without a step are kept."""
    from dtnn.io.jsonl import read_jsonl
    if not os.path.exists(path):
        return []
    records = read_jsonl(path)
    late = [isinstance(r.get("step"), int) and r["step"] > step for r in records]
    keep = [r for r, drop in zip(records, late) if not drop]
    dropped = [r for r, drop in zip(records, late) if drop]
    if dropped:
        write_text_atomic(path, "".join(json.dumps(r, separators=(",", ":")) + "\n"
                                        for r in keep))
    return dropped
