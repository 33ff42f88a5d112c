"""The ``bestof`` convolution "variant": runs the fastest variant for each exact shape.
It is the default (``model.conv_algorithm``, ``Conv2D(algorithm=...)``).

Every call is keyed by (geometry, dtype, threads, ISA level, mode) where mode is ``train`` (a
forward followed by its backward: the pair is timed and chosen together, and the
backward always runs on the variant whose forward produced the output, so it can reuse
what that forward cached) or ``infer`` (forward only: evaluation and prediction are
tuned separately).  The choice is a process-wide ``BestOf`` named "conv" (training)
or "conv_infer" (see ``dtnn.tune``), so layers of the same shape share a decision and
decisions are cached on disk.  In training the ranks agree (timings MAX-reduced over
the job, or over the node with ``tune.scope = "node"``); inference is tuned per rank, because evaluation shards
may give ranks different batch counts and sizes (a collective would hang).  Variants
with a nested choice (Winograd's tile size) settle it first: their samples are not
counted until ``tuning_settled(key)`` is True.

Candidates: the variants in ``tune.candidates`` (default ``CANDIDATES``: dtnn's own;
add ``torch`` to race torch's convolution too) that ``support`` the geometry and find
it ``worth_tuning`` (``im2col`` always).  Before a shape is tuned, every candidate is
screened for accuracy on the call's data (``dtnn.conv.screen``) and those whose error
exceeds ``tune.max_error`` are excluded for that shape; the tuning cost is bounded by
``tune.max_seconds`` (``dtnn.tune.bestof``).
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional

import numpy as np

import dtnn.tune as _tune
from dtnn.conv.base import CONV_ALGORITHMS, ConvAlgorithm, ConvGeometry

#: variants raced by "bestof" by default, in order (the first is the default the report
#: compares to).  Not torch: importing it costs 1-2 s per process, and a dtnn-vs-torch
#: comparison should not race torch inside dtnn; tune.candidates can add it.
CANDIDATES = ["im2col", "im2col1", "winograd", "implicit", "direct", "livetaps", "tapgemm"]
TUNER = "conv"
TUNER_INFER = "conv_infer"

#: the call being tuned, for the accuracy screen (the tuners are shared by all layers)
_screen_input = None


def _threads() -> int:
    return _tune.current_threads()


def _screen(key, names):
    from dtnn.conv.screen import errors
    if _screen_input is None:
        return {}
    x, w, b, g = _screen_input
    return errors(names, x, w, b, g, key[-1] == "train")


@CONV_ALGORITHMS.register("bestof")
class BestOfConv(ConvAlgorithm):
    label: Optional[str] = None    # layer name, for the report

    def __init__(self, candidates: Optional[List[str]] = None):
        self.names = list(candidates or _tune.options().conv_candidates or CANDIDATES)
        if "im2col" not in self.names:
            self.names.insert(0, "im2col")
        self.algs: Dict[str, ConvAlgorithm] = {n: CONV_ALGORITHMS.get(n)() for n in self.names}
        self._last: Optional[ConvAlgorithm] = None
        self._pending = None
        self._fast: Dict = {}   # (geometry, training, threads) -> (tuner, variant, key)

    def _candidates(self, key) -> List[str]:
        g = key[0]
        return [n for n in self.names
                if n == "im2col" or (self.algs[n].supports(g) and self.algs[n].worth_tuning(g))]

    def _inner_settled(self, name: str, key) -> bool:
        return self.algs[name].tuning_settled(key)

    def tuner(self, training: Optional[bool] = None):
        """The "conv" tuner (training: node-reduced, ranks agree) or "conv_infer"
        (inference: rank-local, since evaluation shards may differ between ranks)."""
        training = self.training if training is None else training
        return _tune.get_tuner(TUNER if training else TUNER_INFER, list(self.names),
                               local=not training, default="im2col",
                               candidates=self._candidates, inner_settled=self._inner_settled,
                               screen=_screen)

    def key(self, g: ConvGeometry, training: bool):
        from dtnn._kernels.isa import current
        return (g, "float32", _threads(), current(), "train" if training else "infer")

    def forward(self, x, w, b, g):
        global _screen_input
        from dtnn._kernels.isa import current
        fast = self._fast.get((g, self.training, _threads(), current()))
        if fast is not None and fast[0] is _tune._tuners.get(
                TUNER if self.training else TUNER_INFER):
            alg = fast[1]                          # fast path: decided (two dict lookups)
            alg.training = self.training
            alg.tune_key = fast[2]
            self._last, self._pending = alg, None
            return alg.forward(x, w, b, g)
        tuner = self.tuner()
        key = self.key(g, self.training)
        name = tuner.winner(key)
        if name is not None:
            self._fast[(g, self.training, key[2], key[3])] = (tuner, self.algs[name], key)
            alg = self.algs[name]
            alg.training = self.training
            alg.tune_key = key
            self._last, self._pending = alg, None
            return alg.forward(x, w, b, g)
        _screen_input = (x, w, b, g)     # the screen (at the key's first call) reads it
        try:
            name = tuner.choose(key, self.label)
        finally:
            _screen_input = None
        alg = self.algs[name]
        alg.training = self.training
        alg.tune_key = key
        t0 = time.perf_counter()
        y = alg.forward(x, w, b, g)
        dt = time.perf_counter() - t0
        self._last = alg
        if self.training:
            self._pending = (key, name, dt)
        else:
            self._pending = None
            tuner.record(key, name, dt)
        return y

    def backward(self, dy, x, w, g, need_dx, dw_out, db_out):
        alg = self._last
        if alg is None:
            raise RuntimeError("bestof: backward without a forward")
        pend, self._pending = self._pending, None
        if pend is None:
            return alg.backward(dy, x, w, g, need_dx, dw_out, db_out)
        t0 = time.perf_counter()
        dx = alg.backward(dy, x, w, g, need_dx, dw_out, db_out)
        key, name, tf = pend
        self.tuner(True).record(key, name, tf + time.perf_counter() - t0)
        return dx
