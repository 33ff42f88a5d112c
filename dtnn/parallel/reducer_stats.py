"""The reducer's per-step timers and byte counters (``GradientReducer.stats()``)."""
from __future__ import annotations

import time
from typing import Any, Dict, Optional

KEYS = ("steps", "timed_steps", "exposed", "hook_mpi", "comm", "backward_window", "step",
        "compute_timed", "exposed_timed", "check_seconds", "codec", "codec_timed",
        "codec_in_wait", "sent", "wire_sent", "wire_recv")


class StepStats:
    def __init__(self, reducer):
        self.r = reducer
        self.reset()

    def reset(self) -> None:
        self.s: Dict[str, float] = {k: 0.0 for k in KEYS}
        self._last_end: Optional[float] = None
        self._check_since_last = 0.0

    def begin(self) -> None:
        self._t0 = time.perf_counter()
        self._hook = 0.0
        self._first_post: Optional[float] = None
        self._codec_wait = [0.0, None]   # the codec counter when the final wait begins / ends

    def _codec(self) -> float:
        return self.r.exchange.codec_seconds if self.r._cx else 0.0

    def wait_begins(self) -> None:
        """The final wait starts: codec from here on runs inside it (decodes of the
        buckets that complete, PowerSGD's between-rounds work, SparCML's sums)."""
        self._codec_wait = [self._codec(), None]

    def wait_ends(self) -> None:
        """The wait for the ops is over (blocking rounds follow, timed apart)."""
        self._codec_wait[1] = self._codec()

    def hook(self, seconds: float) -> None:
        self._hook += seconds

    def first_post(self, t: Optional[float] = None) -> None:
        if self._first_post is None:
            self._first_post = time.perf_counter() if t is None else t

    def checked(self, seconds: float) -> None:
        self.s["check_seconds"] += seconds
        self._check_since_last += seconds

    def end(self, t_wait: float, t_end: float, ops, decode: float,
            exposed: Optional[float] = None,
            in_wait: Optional[float] = None) -> Optional[float]:
        """Account one step; returns the step's length (None for the first step).
        ``exposed``: the time blocked on this step's exchange when it was not one wait
        from ``t_wait`` to ``t_end`` (a deferred step: the waits of the next forward),
        ``in_wait`` the codec seconds inside those waits (already out of ``exposed``)."""
        r, s = self.r, self.s
        cx = r._cx
        codec = r.exchange.codec_seconds if cx else 0.0
        done = [op.finished for op in ops if op.finished is not None]
        comm = 0.0
        if self._first_post is not None and done:
            comm = max(0.0, max(done) - self._first_post)
        # codec that ran inside the wait is codec, not exposed communication: counted
        # once, in ``codec`` (inline; the exchange thread's codec overlaps the wait)
        if in_wait is None:
            in_wait = 0.0
            if cx and not r.executor.threaded:
                stop = self._codec_wait[1] if self._codec_wait[1] is not None else codec
                in_wait = max(0.0, stop - self._codec_wait[0])
        if exposed is None:
            exposed = t_end - t_wait - decode - in_wait
        s["codec_in_wait"] += in_wait
        s["steps"] += 1
        s["exposed"] += exposed
        s["hook_mpi"] += self._hook
        s["comm"] += comm
        s["backward_window"] += t_wait - self._t0
        s["codec"] += codec
        s["sent"] += (r.exchange.sent_bytes + r._buf_pack.nbytes) if cx else r.payload_bytes
        s["wire_sent"] += sum(op.sent for op in ops)
        s["wire_recv"] += sum(op.received for op in ops)
        step = None
        if self._last_end is not None:
            step = t_end - self._last_end
            # with the exchange thread the codec overlaps compute: do not subtract it
            inline_codec = 0.0 if r.executor.threaded else codec
            s["timed_steps"] += 1
            s["step"] += step
            s["compute_timed"] += step - exposed - self._hook - self._check_since_last \
                - inline_codec
            s["codec_timed"] += codec
            s["exposed_timed"] += exposed
        self._last_end = t_end
        self._check_since_last = 0.0
        return step

    def summary(self) -> Dict[str, Any]:
        r, s = self.r, self.s
        n = max(1.0, s["steps"])
        nt = max(1.0, s["timed_steps"])
        p = r.size
        return {
            "mode": r.mode, "ranks": p, "buckets": len(r.buckets), "bucket_mb": r.bucket_mb,
            "progress": r.options.progress, "steps": int(s["steps"]),
            "step_seconds": s["step"] / nt if s["timed_steps"] else None,
            "compute_seconds": s["compute_timed"] / nt if s["timed_steps"] else None,
            "exposed_comm_seconds": s["exposed"] / n,
            "hook_mpi_seconds": s["hook_mpi"] / n,
            "comm_seconds": s["comm"] / n,
            "backward_seconds": s["backward_window"] / n,
            "check_seconds": s["check_seconds"] / n,
            "payload_bytes": r.payload_bytes,
            "wire_bytes_estimate": int(2 * (p - 1) / p * r.payload_bytes) if p > 1 else 0,
            "wire_sent_bytes": s["wire_sent"] / n,
            "wire_recv_bytes": s["wire_recv"] / n,
            "compress": r.options.compress,
            "codec_seconds": s["codec"] / n,
            "codec_in_wait_seconds": s["codec_in_wait"] / n,
            "sent_bytes": s["sent"] / n,
            "compression_ratio": (r.payload_bytes / (s["sent"] / n)) if s["sent"] else 1.0,
        }
