"""The accuracy screen BestOf runs before it tunes a convolution shape.

Every variant computes the same convolution, but not equally accurately: Winograd
F(4x4) is ~10-20x less accurate than im2col in float32 (larger transform
coefficients), and a variant could be wrong on a shape nobody tested.  Before a layer
shape is tuned, each candidate runs once on a slice of the real call's data (the
first ``SCREEN_IMAGES`` images, the real weights, a seeded random output gradient) and
is compared with a float64 reference; ``BestOf`` excludes for that shape every variant
whose normwise error ||ours - ref|| / ||ref|| (worst of forward, backward-data and
backward-weights in training; forward in inference) exceeds ``tune.max_error``.  A
variant that raises gets an infinite error.  The screen's time is part of the tuning
cost.

A variant with a nested choice is screened in each of its fixed forms (``winograd``:
both tile sizes), on fresh instances, so no tuner sees these calls.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

from dtnn.conv.base import CONV_ALGORITHMS, ConvGeometry

#: images of the call's batch the screen uses (more for tiny images, so that size
#: thresholds such as im2col's fused_min_pixels pick the same code path as the batch)
SCREEN_IMAGES = 2
SCREEN_PIXELS = 256
#: the fixed forms a variant with a nested choice is screened in
FORMS = {"winograd": ("winograd2", "winograd4")}


def reference(x, w, b, g: ConvGeometry, dy=None) -> Tuple[np.ndarray, ...]:
    """float64 y (and dx, dw when dy is given) by explicit sums over the taps."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    (sh, sw), (ph, pw), (dh, dwl) = g.stride, g.padding, g.dilation
    Ho, Wo = g.out_hw
    G, Kg = g.groups, K // g.groups
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((N, G, Kg, Ho, Wo))
    dxp = np.zeros_like(xp) if dy is not None else None
    dw = np.zeros_like(w) if dy is not None else None
    dyg = dy.astype(np.float64).reshape(N, G, Kg, Ho, Wo) if dy is not None else None
    for r in range(R):
        for s in range(S):
            win = (slice(None), slice(None), slice(r * dh, r * dh + sh * (Ho - 1) + 1, sh),
                   slice(s * dwl, s * dwl + sw * (Wo - 1) + 1, sw))
            tap = xp[win].reshape(N, G, Cg, Ho, Wo)
            wg = w[:, :, r, s].reshape(G, Kg, Cg)
            y += np.einsum("gkc,ngchw->ngkhw", wg, tap, optimize=True)
            if dy is not None:
                dw[:, :, r, s] = np.einsum("ngkhw,ngchw->gkc", dyg, tap,
                                           optimize=True).reshape(K, Cg)
                dxp[win] += np.einsum("gkc,ngkhw->ngchw", wg, dyg,
                                      optimize=True).reshape(N, C, Ho, Wo)
    y = y.reshape(N, K, Ho, Wo)
    if b is not None:
        y += np.asarray(b, np.float64).reshape(1, K, 1, 1)
    if dy is None:
        return (y,)
    return y, dxp[:, :, ph:ph + H, pw:pw + W], dw


def _err(a, ref) -> float:
    den = float(np.linalg.norm(ref))
    num = float(np.linalg.norm(np.asarray(a, np.float64) - ref))
    return num / den if den > 0 else (0.0 if num == 0 else float("inf"))


def errors(names: List[str], x, w, b, g: ConvGeometry, training: bool) -> Dict[str, float]:
    """name -> worst normwise error of the variant's passes on a slice of this call."""
    ho, wo = g.out_hw
    n = min(g.N, max(SCREEN_IMAGES, -(-SCREEN_PIXELS // max(1, ho * wo))))
    gs = g.with_batch(n)
    xs = np.ascontiguousarray(x[:n], np.float32)
    w = np.ascontiguousarray(w, np.float32)
    dy: Optional[np.ndarray] = None
    if training:
        dy = np.random.default_rng(0).standard_normal((n, g.K, ho, wo)).astype(np.float32)
    ref = reference(xs, w, b, gs, dy)
    out: Dict[str, float] = {}
    for name in names:
        worst = 0.0
        for form in FORMS.get(name, (name,)):
            try:
                alg = CONV_ALGORITHMS.get(form)()
                alg.training = training
                if not alg.supports(gs):
                    continue
                worst = max(worst, _err(alg.forward(xs, w, b, gs), ref[0]))
                if training:
                    dw = np.empty_like(w)
                    db = None if b is None else np.empty(g.K, np.float32)
                    dx = alg.backward(dy, xs, w, gs, True, dw, db)
                    worst = max(worst, _err(dx, ref[1]), _err(dw, ref[2]))
            except Exception:       # a variant that fails on this shape is never picked
                worst = float("inf")
        out[name] = worst
    return out
