"""JSON Lines logs: one JSON object per line, appended and flushed on every write.

Numpy scalars and arrays are converted to Python numbers and lists.  Non-finite
floats are written as ``NaN`` / ``Infinity`` (what Python's json module reads back).
A crash can leave a partial last line: ``read_jsonl`` skips it, a new ``JsonlWriter``
removes it before appending (a complete last record without its newline is kept),
and any other malformed line is a DataError.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

from dtnn.errors import DataError
from dtnn.io.hdf5tree import to_jsonable


def _encode(record: Dict[str, Any]) -> str:
    if not isinstance(record, dict):
        raise TypeError(f"a JSONL record must be a dict (got {type(record).__name__})")
    return json.dumps(record, default=to_jsonable, separators=(",", ":"))


def _repair_last_line(path: str, block: int = 1 << 16) -> None:
    """Make sure an existing file ends with a newline, so appended records start on a
    line of their own.  An unterminated last line that is not valid JSON (a write cut
    short by a crash) is removed; a valid one just gets its newline."""
    try:
        f = open(path, "r+b")
    except FileNotFoundError:
        return
    with f:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return
        f.seek(end - 1)
        if f.read(1) == b"\n":
            return
        pos, line_start = end, 0
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            i = f.read(pos - start).rfind(b"\n")
            if i >= 0:
                line_start = start + i + 1
                break
            pos = start
        f.seek(line_start)
        tail = f.read()
        try:
            complete = isinstance(json.loads(tail.decode("utf-8")), dict)
        except ValueError:
            complete = False
        if complete:
            f.seek(end)
            f.write(b"\n")
        else:
            f.truncate(line_start)


class JsonlWriter:
    """Append records to ``path`` (created with its directory if needed).

    Usable as a context manager; ``write`` returns nothing and flushes the line to the
    OS so that ``tail -f`` and a crash both see whole records.
    """

    def __init__(self, path: str):
        self.path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        _repair_last_line(self.path)
        self._file: Optional[Any] = open(self.path, "a", encoding="utf-8")

    def write(self, record: Dict[str, Any]) -> None:
        if self._file is None:
            raise ValueError(f"JsonlWriter({self.path}) is closed")
        line = _encode(record) + "\n"  # encode fully before touching the file
        self._file.write(line)
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def closed(self) -> bool:
        return self._file is None

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


def read_jsonl(path: str) -> List[Dict[str, Any]]:
    """All records of ``path`` in order (blank lines and a partial last line skipped)."""
    path = os.fspath(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({' '.join(str(e).split())})") from None
    lines = text.split("\n")
    complete = text.endswith("\n")
    records = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            if n == len(lines) and not complete:
                break  # partial last line left by an interrupted write
            raise DataError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{n}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    return records
