"""The ``winograd`` convolution variant: F(2x2,3x3) and F(4x4,3x3) for 3x3 stride-1 convs.

forward         y = A^T [ (G w G^T) . (B^T d B) ] A, the element-wise stage as one batched
                GEMM per chunk: M (alpha², K, T) = U (alpha², K, C) @ V (alpha², C, T).
                The batch is chunked (``chunk_size``: a multiple of 16 images whose V + M
                fit in ``workspace_bytes``) so V and M stay in the outer caches and the
                GEMMs stay wide.  The filter, input and output transforms are C+OpenMP
                kernels (``dtnn.conv.kernels``, csrc/winograd.c) vectorised across 16
                (tile row, image) strips, or 16 filters; U is cached while the layer is
                in inference.  U, V and M live in reused workspaces whose alpha²
                position slices are padded apart (``_position_stride``): unpadded, their
                power-of-two strides made every transform's 36 concurrent streams fight
                over one cache set.
backward-data   a Winograd convolution of dy with the flipped, transposed filter
                (K<->C, 180° rotation) and padding 2 - p (so padding <= 2 is required);
                the C filter transform rotates while it gathers, and the GEMM takes each
                position's (K, C) slice transposed, so nothing is copied.
backward-weights im2col (``Im2ColConv.backward`` with need_dx=False).

Accuracy: F(2x2) is about as accurate as direct convolution in fp32; F(4x4) uses
transform coefficients up to 8 and 1/24, and its normwise error is ~10-20x larger
(about 1e-5 relative to max|y| on unit-scale data; see tests/conv).

Tile size: ``winograd`` picks m in {4, 2} with a nested ``BestOf`` (tuner
"winograd_tile", same key as the parent) that settles before the parent compares
Winograd with the other variants; ``winograd2`` / ``winograd4`` fix it.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from dtnn.conv import kernels as K_
from dtnn.conv.base import CONV_ALGORITHMS, ConvAlgorithm, ConvGeometry
from dtnn.conv.im2col import Im2ColConv, _workspace

TILE_TUNER = "winograd_tile"
TILE_NAMES = {"F4": 4, "F2": 2}
LANES = 16                     # strips (tile row, image) per vector in the C transforms


def tile_count(n: int, m: int) -> int:
    return -(-n // m)


def _position_stride(n: int) -> int:
    """Floats between the alpha² position slices of U, V or M: at least n, and 64 bytes
    past a multiple of 4 KiB, so the slices a transform writes together (one vector to
    each) fall into different cache sets instead of all into one."""
    return -(-n // 1024) * 1024 + 16


def _rows(ws: np.ndarray, a2: int, ps: int, r: int, t: int) -> np.ndarray:
    """(a2, r, t) view of the flat workspace ``ws``, slice p starting at p*ps."""
    return ws[:a2 * ps].reshape(a2, ps)[:, :r * t].reshape(a2, r, t)


@CONV_ALGORITHMS.register("winograd")
class WinogradConv(ConvAlgorithm):
    """Winograd F(m x m, 3 x 3); m tuned online (nested BestOf) unless fixed."""

    tile: Optional[int] = None           # None: tuned
    workspace_bytes: int = 10 << 20      # V + M of one chunk (~10 MiB measured best here)

    def __init__(self, tile: Optional[int] = None, workspace_bytes: Optional[int] = None):
        if tile is not None:
            if int(tile) not in (2, 4):
                raise ValueError(f"winograd tile must be 2 or 4, got {tile}")
            self.tile = int(tile)
        if workspace_bytes is not None:
            self.workspace_bytes = int(workspace_bytes)
        self._im2col = Im2ColConv()
        self._ucache = None               # (fingerprint, m, U) in inference
        self._pending = None              # (key, name, m, forward seconds) while tuning

    # --- contract -----------------------------------------------------------------------
    def supports(self, g: ConvGeometry) -> bool:
        return (g.R == 3 and g.S == 3 and g.stride == (1, 1) and g.dilation == (1, 1)
                and g.groups == 1 and max(g.padding) <= 2)

    def tuning_settled(self, key) -> bool:
        if self.tile is not None:
            return True
        return self._tile_tuner(key[-1] == "train").settled(key)

    # --- tile choice ----------------------------------------------------------------------
    def _tile_tuner(self, training: Optional[bool] = None):
        from dtnn.tune import get_tuner
        training = self.training if training is None else training
        return get_tuner(TILE_TUNER if training else TILE_TUNER + "_infer", list(TILE_NAMES),
                         local=not training, default="F2")

    def _key(self, g: ConvGeometry):
        key = getattr(self, "tune_key", None)
        if key is None:
            from dtnn.tune import current_threads
            key = (g, "float32", current_threads(), "train" if self.training else "infer")
        return key

    # --- the convolution itself -------------------------------------------------------------
    def chunk_size(self, C: int, K: int, tiles_per_image: int, m: int, N: int) -> int:
        """Images per chunk: the largest multiple of LANES (the transforms' vector width)
        whose V + M fit in ``workspace_bytes``; fewer only when even LANES images do not
        fit, then as equal chunks as the budget allows."""
        per_image = (m + 2) ** 2 * (C + K) * tiles_per_image * 4
        cap = int(max(1, min(N, self.workspace_bytes // max(per_image, 1))))
        if cap >= N:
            return max(N, 1)
        if cap >= LANES:
            return cap // LANES * LANES
        return -(-N // -(-N // cap))

    def _conv(self, x: np.ndarray, U: np.ndarray, bias, ph: int, pw: int, m: int,
              Ho: int, Wo: int) -> np.ndarray:
        N, C, H, W = x.shape
        A2, K, _ = U.shape
        th, tw = tile_count(Ho, m), tile_count(Wo, m)
        chunk = self.chunk_size(C, K, th * tw, m, N)
        T = chunk * th * tw
        vps, mps = _position_stride(C * T), _position_stride(K * T)
        v_ws = _workspace("wino_v", A2 * vps)
        m_ws = _workspace("wino_m", A2 * mps)
        y = np.empty((N, K, Ho, Wo), np.float32)
        for n0 in range(0, N, chunk):
            nb = min(chunk, N - n0)
            t = nb * th * tw
            V = K_.compiled_winograd_input(x[n0:n0 + nb], ph, pw, m, th, tw,
                                           out=_rows(v_ws, A2, vps, C, t))
            M = np.matmul(U, V, out=_rows(m_ws, A2, mps, K, t))
            K_.compiled_winograd_output(M, bias, nb, Ho, Wo, m, th, tw, out=y[n0:n0 + nb])
        return y

    @staticmethod
    def _transform_filter(w: np.ndarray, m: int, flip: bool = False,
                          persistent: bool = False) -> np.ndarray:
        """U (alpha², K, C) in a position-padded buffer (a reused workspace unless
        ``persistent``); ``flip``: (alpha², C, K), the transposed view of the transforms
        of the 180°-rotated filters (the filters of backward-data)."""
        K, C = w.shape[:2]
        a2 = (m + 2) ** 2
        ps = _position_stride(K * C)
        buf = np.empty(a2 * ps, np.float32) if persistent else _workspace("wino_u", a2 * ps)
        U = K_.compiled_winograd_filter(w, m, flip, out=_rows(buf, a2, ps, K, C))
        return U.transpose(0, 2, 1) if flip else U

    def _filter(self, w: np.ndarray, m: int, cache: bool) -> np.ndarray:
        if not cache:
            self._ucache = None
            return self._transform_filter(w, m)
        flat = w.reshape(-1)
        fp = (id(w), w.__array_interface__["data"][0],
              flat[::max(1, flat.size // 64)].tobytes())
        c = self._ucache
        if c is not None and c[0] == fp and c[1] == m:
            return c[2]
        U = self._transform_filter(w, m, persistent=True)
        self._ucache = (fp, m, U)
        return U

    def _forward_m(self, x, w, b, g: ConvGeometry, m: int) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        U = self._filter(np.ascontiguousarray(w, dtype=np.float32), m, cache=not self.training)
        ho, wo = g.out_hw
        bias = None if b is None else np.ascontiguousarray(b, dtype=np.float32)
        return self._conv(x, U, bias, g.padding[0], g.padding[1], m, ho, wo)

    def forward(self, x, w, b, g: ConvGeometry) -> np.ndarray:
        if self.tile is not None:
            self._m = self.tile
            return self._forward_m(x, w, b, g, self.tile)
        tuner = self._tile_tuner()
        key = self._key(g)
        win = tuner.winner(key)
        if win is not None:
            self._m = TILE_NAMES[win]
            self._pending = None
            return self._forward_m(x, w, b, g, self._m)
        name = tuner.choose(key)
        self._m = TILE_NAMES[name]
        t0 = time.perf_counter()
        y = self._forward_m(x, w, b, g, self._m)
        dt = time.perf_counter() - t0
        if self.training:
            self._pending = (key, name, dt)       # completed by backward (grouped)
        else:
            tuner.record(key, name, dt)
        return y

    def backward(self, dy, x, w, g: ConvGeometry, need_dx, dw_out, db_out):
        pend, self._pending = self._pending, None
        t0 = time.perf_counter()
        m = getattr(self, "_m", None) or self.tile or 4
        dx = None
        if need_dx:
            ph, pw = g.padding
            U = self._transform_filter(np.ascontiguousarray(w, dtype=np.float32), m, flip=True)
            dx = self._conv(np.ascontiguousarray(dy, dtype=np.float32), U, None,
                            2 - ph, 2 - pw, m, g.H, g.W)
        self._im2col.backward(dy, x, w, g, False, dw_out, db_out)
        if pend is not None:
            key, name, tf = pend
            self._tile_tuner(True).record(key, name, tf + time.perf_counter() - t0)
        return dx


@CONV_ALGORITHMS.register("winograd2")
class Winograd2Conv(WinogradConv):
    """Winograd with the tile fixed to F(2x2,3x3)."""
    tile = 2


@CONV_ALGORITHMS.register("winograd4")
class Winograd4Conv(WinogradConv):
    """Winograd with the tile fixed to F(4x4,3x3)."""
    tile = 4
