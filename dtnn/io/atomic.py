"""Writing files so that no reader and no crash ever sees a part of one.

Every file dtnn writes for a user (checkpoints, run-directory records, ONNX models,
configs, tuning caches, reports) goes through :func:`atomic_path`: the content is
written to ``.<name>.tmp-<host>-<pid>`` next to the target and renamed over it, so the
target holds the old or the new content, never a mix; on any failure (an exception, a
signal turned into one) the temporary file is removed and the old file stays.  A writer
that is killed outright leaves its temporary file behind; :func:`remove_stale_temp_files`
deletes those of dead processes on this host (the host is in the name because run
directories are often on a file system shared by a cluster's nodes).
"""
from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from typing import Iterator, List

TEMP_MARK = ".tmp-"


def host_tag() -> str:
    """This host's name as it appears in temporary file names (no '-', which
    separates it from the pid)."""
    return socket.gethostname().replace("-", "_") or "localhost"


def temp_path(path: str) -> str:
    """The temporary file this process writes ``path`` through."""
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(directory, f".{name}{TEMP_MARK}{host_tag()}-{os.getpid()}")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` on this host still runs (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_stale_temp_files(path: str) -> List[str]:
    """Delete the temporary files that writers of ``path`` left when they were killed
    mid-write (``.<name>.tmp-<host>-<pid>`` whose process on this host is gone;
    ``.<name>.tmp-<pid>`` from older versions).  Files of live writers and of other
    hosts are kept.  Returns the removed paths."""
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    prefix = f".{name}{TEMP_MARK}"
    removed: List[str] = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        host, _, pid = entry[len(prefix):].rpartition("-")
        if not pid.isdigit() or (host and host != host_tag()) or pid_alive(int(pid)):
            continue
        try:
            os.unlink(os.path.join(directory, entry))
            removed.append(os.path.join(directory, entry))
        except OSError:
            pass
    return removed


def fsync_path(path: str, directory: bool = False) -> None:
    """Flush ``path`` (a file, or with ``directory`` its entries) to stable storage."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str, *, durable: bool = False) -> Iterator[str]:
    """Yield the temporary path to write ``path`` through; on a clean exit rename it
    over ``path``, on any exception (KeyboardInterrupt included) remove it and re-raise.

    ``durable`` also fsyncs the file before the rename and the directory after it, so
    the new content survives a power cut (checkpoints); without it the rename is still
    atomic for readers and crashes of the process.  The parent directory is created.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        if durable:
            fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        try:
            fsync_path(directory, directory=True)  # the rename itself
        except OSError:
            pass  # some file systems cannot fsync a directory; the data is safe


def write_text(path: str, text: str, *, durable: bool = False) -> str:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_path(path, durable=durable) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    return path


def write_bytes(path: str, data: bytes, *, durable: bool = False) -> str:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path, durable=durable) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return path
