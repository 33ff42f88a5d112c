"""SIGINT and SIGTERM that are never lost.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be.  Inside a
weakref callback or a ``__del__`` (h5py closes its objects through them, so every
checkpoint save runs some) the exception is printed as ``Exception ignored in: ...``
and dropped, and training went on.  Here the signal handler also *records* the
signal, so:

* ``check()`` -- called by the trainer after every step -- raises it again if it was
  swallowed;
* ``deferred()`` -- around a checkpoint save -- holds it back until the file is
  complete and renamed into place, then raises it.

Under MPI with several processes the handler only records the signal: the watchdog
thread (woken through ``signal.set_wakeup_fd`` even while the main thread is blocked
in MPI) ends the whole job.  ``Interrupted`` is a ``KeyboardInterrupt`` carrying the
signal, so ``except KeyboardInterrupt`` keeps working; its exit status is 128 + signal.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager, nullcontext
from typing import Iterator, Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class _State:
    pending: Optional[int] = None   # first signal received and not yet raised
    depth: int = 0                  # nesting of deferred() blocks
    installed: bool = False         # our handler is in place (handled() or deferred())
    record_only: bool = False       # MPI: never raise, the watchdog ends the job


_state = _State()


def _handler(signum, frame) -> None:
    if _state.pending is None:
        _state.pending = signum
    if not _state.record_only and _state.depth == 0:
        raise Interrupted(signum)


def pending() -> Optional[int]:
    return _state.pending


def check() -> None:
    """Raise a recorded interrupt that has not been raised (or was swallowed)."""
    if _state.pending is not None and not _state.record_only and _state.depth == 0:
        raise Interrupted(_state.pending)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install(record_only: bool = False, wakeup_fd: Optional[int] = None):
    """Put the handler in place for SIGINT and SIGTERM (main thread only; returns a
    function that restores what was there, or None if nothing was changed).
    ``wakeup_fd``: also write each signal number to this fd."""
    if not _in_main_thread() or _state.installed:
        return None
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    _state.pending, _state.depth = None, 0
    _state.installed, _state.record_only = True, record_only
    for s in SIGNALS:
        signal.signal(s, _handler)
    old_fd = (signal.set_wakeup_fd(wakeup_fd, warn_on_full_buffer=False)
              if wakeup_fd is not None else None)

    def restore() -> None:
        if wakeup_fd is not None:
            signal.set_wakeup_fd(old_fd if old_fd is not None else -1)
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        _state.installed, _state.record_only = False, False
        if not record_only:
            _state.pending = None

    return restore


@contextmanager
def handled(record_only: bool = False, wakeup_fd: Optional[int] = None) -> Iterator[None]:
    """``install()`` for the block (a no-op if the handler is already in place)."""
    restore = install(record_only, wakeup_fd)
    try:
        yield
    finally:
        if restore is not None:
            restore()


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back for the block (a checkpoint save), then raise.

    Works inside ``handled()`` and on its own (installs the handler for the block,
    main thread only); in other threads a no-op."""
    if not _in_main_thread():
        yield
        return
    with (nullcontext() if _state.installed else handled(record_only=False)):
        _state.depth += 1
        try:
            yield
        finally:
            _state.depth -= 1
        check()
