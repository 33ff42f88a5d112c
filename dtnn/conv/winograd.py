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
backward-weights dw = G^T [ sum over tiles (A dy_t A^T) . (B^T x_t B) ] G: by chunks of
                images, V as in forward and D (alpha², K, T) = A dy A^T (C kernel
                ``winograd_dy``, the adjoint of the output transform), one GEMM per
                position dU[p] (K, C) = D[p] @ V[p]^T (V's transpose is a view BLAS
                takes as is), and G^T dU G added into dw (``winograd_dfilter``, the
                adjoint of the filter transform); db comes free as the sum of D's
                position (1, 1).  Each chunk costs a pass over dU (alpha² K C floats),
                so chunks hold at least 2 dU of V + D (``dw_workspace_bytes`` at least).
                ``backward_weights``: "winograd", "im2col" (``Im2ColConv.backward``
                with need_dx=False) or "auto" (default; ``weights_path``): Winograd
                when the batch has >= 2 images, >= DW_MIN_TILES tiles in all and
                min(K, C) >= DW_MIN_CHANNELS; below that (batch 1, 4x4 images with
                few images, F(2x2) on < 128 channels, first layers) the per-position
                GEMMs are too short or narrow for OpenBLAS and im2col wins.
                At 1 thread, batch 64, 64..512 channels: F(4x4) 0.5-0.7 of torch's
                time, F(2x2) 0.6-0.9 on >= 128 channels (im2col: 0.8-1.05).

Accuracy: F(2x2) is about as accurate as direct convolution in fp32; F(4x4) uses
transform coefficients up to 8 and 1/24, and its normwise error is ~10-20x larger
(about 1e-5 relative to max|y| on unit-scale data; see tests/conv).  Backward-weights
(normwise vs float64, unit normal data, batch 64): F(2x2) 5e-7 (im2col 8e-7), F(4x4)
2e-6..3.5e-6; on post-ReLU inputs all ~1e-7..3.5e-7 (tests/conv/
test_winograd_backward_weights.py).

Tile size: ``winograd`` picks m in {4, 2} with a nested ``BestOf`` (tuner
"winograd_tile", same key as the parent) that settles before the parent compares
Winograd with the other variants; ``winograd2`` / ``winograd4`` fix it.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from dtnn.gemm import matmul

from dtnn.conv import kernels as K_
from dtnn.conv.base import CONV_ALGORITHMS, ConvAlgorithm, ConvGeometry
from dtnn.conv.im2col import Im2ColConv, _reshape_view, _workspace

TILE_TUNER = "winograd_tile"
TILE_NAMES = {"F4": 4, "F2": 2}
BACKWARD_WEIGHTS = ("auto", "winograd", "im2col")
# "auto" takes the Winograd backward-weights when the batch has N >= 2 images, at least
# DW_MIN_TILES[m] tiles in all and min(K, C) >= DW_MIN_CHANNELS[m]; im2col otherwise.
# Measured at 1 thread (N 1..64, 3..512 channels, 4x4..64x64): below these the per-tile
# GEMMs are too short or too narrow for OpenBLAS and im2col's one long GEMM wins.
DW_MIN_TILES = {4: 16, 2: 8}
DW_MIN_CHANNELS = {4: 32, 2: 128}
DW_BUDGET_MAX = 64 << 20       # bytes of V + D per backward-weights chunk, at most
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
    backward_weights: str = "auto"       # or "winograd" / "im2col" (BACKWARD_WEIGHTS)
    dw_workspace_bytes: int = 10 << 20   # V + D of one backward-weights chunk, at least

    def __init__(self, tile: Optional[int] = None, workspace_bytes: Optional[int] = None,
                 backward_weights: Optional[str] = None,
                 dw_workspace_bytes: Optional[int] = None):
        if tile is not None:
            if int(tile) not in (2, 4):
                raise ValueError(f"winograd tile must be 2 or 4, got {tile}")
            self.tile = int(tile)
        if workspace_bytes is not None:
            self.workspace_bytes = int(workspace_bytes)
        if backward_weights is not None:
            if backward_weights not in BACKWARD_WEIGHTS:
                raise ValueError(f"backward_weights must be one of {BACKWARD_WEIGHTS}, "
                                 f"got {backward_weights!r}")
            self.backward_weights = backward_weights
        if dw_workspace_bytes is not None:
            self.dw_workspace_bytes = int(dw_workspace_bytes)
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
                         local=not training, default="F2",
                         account=False)   # its calls are timed by the conv tuner too

    def _key(self, g: ConvGeometry):
        key = getattr(self, "tune_key", None)
        if key is None:
            from dtnn.tune import current_threads
            key = (g, "float32", current_threads(), "train" if self.training else "infer")
        return key

    # --- the convolution itself -------------------------------------------------------------
    def chunk_size(self, C: int, K: int, tiles_per_image: int, m: int, N: int,
                   budget: Optional[int] = None) -> int:
        """Images per chunk: the largest multiple of LANES (the transforms' vector width)
        whose V + M fit in ``budget`` (default ``workspace_bytes``); fewer only when even
        LANES images do not fit, then as equal chunks as the budget allows."""
        budget = self.workspace_bytes if budget is None else budget
        per_image = (m + 2) ** 2 * (C + K) * tiles_per_image * 4
        cap = int(max(1, min(N, budget // max(per_image, 1))))
        if cap >= N:
            return max(N, 1)
        if cap >= LANES:
            return cap // LANES * LANES
        return -(-N // -(-N // cap))

    def dw_chunk_size(self, C: int, K: int, tiles_per_image: int, m: int, N: int) -> int:
        """Images per backward-weights chunk: as ``chunk_size`` with a budget for V + D
        of at least twice dU (alpha² K C floats, up to DW_BUDGET_MAX): every chunk costs
        a pass over dU, which with many channels and few tiles per image (8x8, 4x4
        layers) matters more than keeping V and D in cache (measured)."""
        du_bytes = (m + 2) ** 2 * K * C * 4
        budget = max(self.dw_workspace_bytes, min(2 * du_bytes, DW_BUDGET_MAX))
        return self.chunk_size(C, K, tiles_per_image, m, N, budget)

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
            M = matmul(U, V, out=_rows(m_ws, A2, mps, K, t))
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

    def weights_path(self, g: ConvGeometry, m: int) -> str:
        """How backward computes dw: "winograd" or "im2col" (``backward_weights``,
        resolved for this geometry and tile when it is "auto")."""
        if self.backward_weights != "auto":
            return self.backward_weights
        ho, wo = g.out_hw
        tiles = g.N * tile_count(ho, m) * tile_count(wo, m)
        ok = (g.N >= 2 and tiles >= DW_MIN_TILES[m] and min(g.K, g.C) >= DW_MIN_CHANNELS[m])
        return "winograd" if ok else "im2col"

    def _backward_weights(self, dy, x, g: ConvGeometry, m: int, dw_out, db_out) -> None:
        """dw = G^T [sum over tiles of (A dy_t A^T) . (B^T x_t B)] G, by chunks of images:
        V (input transform, as in forward) and D (output-gradient transform), one GEMM
        per position dU[p] = D[p] @ V[p]^T, then G^T dU G added into dw.  db is the sum
        of D's position (1, 1), which is the sum of each dy tile."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        dy = np.ascontiguousarray(dy, dtype=np.float32)
        N, C = x.shape[:2]
        K = dy.shape[1]
        ho, wo = g.out_hw
        a = m + 2
        A2 = a * a
        th, tw = tile_count(ho, m), tile_count(wo, m)
        chunk = self.dw_chunk_size(C, K, th * tw, m, N)
        T = chunk * th * tw
        vps, dps, ups = _position_stride(C * T), _position_stride(K * T), _position_stride(K * C)
        v_ws = _workspace("wino_v", A2 * vps)
        d_ws = _workspace("wino_m", A2 * dps)
        dU = _rows(_workspace("wino_u", A2 * ups), A2, ups, K, C)
        dw = _reshape_view(dw_out, (K, C, 3, 3))        # written in place when possible
        direct = (dw is not None and dw.dtype == np.float32 and dw.flags.c_contiguous
                  and dw.flags.writeable)
        if not direct:
            dw = np.empty((K, C, 3, 3), np.float32)
        db = None if db_out is None else np.zeros(K, np.float32)
        ph, pw = g.padding
        for n0 in range(0, N, chunk):
            nb = min(chunk, N - n0)
            t = nb * th * tw
            V = K_.compiled_winograd_input(x[n0:n0 + nb], ph, pw, m, th, tw,
                                           out=_rows(v_ws, A2, vps, C, t))
            D = K_.compiled_winograd_dy(dy[n0:n0 + nb], m, th, tw,
                                        out=_rows(d_ws, A2, dps, K, t))
            matmul(D, V.transpose(0, 2, 1), out=dU)       # no copy: BLAS transposes
            K_.compiled_winograd_dfilter(dU, m, n0 > 0, out=dw)
            if db is not None:
                db += D[a + 1].sum(axis=1)
        if not direct:
            np.copyto(dw_out, dw.reshape(dw_out.shape))
        if db_out is not None:
            np.copyto(db_out, db.reshape(db_out.shape))

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
        if self.weights_path(g, m) == "winograd":
            self._backward_weights(dy, x, g, m, dw_out, db_out)
        else:
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
