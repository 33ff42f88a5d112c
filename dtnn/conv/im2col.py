"""The ``im2col`` convolution variant: unfold patches into columns, then one GEMM.

Layout (shared with the kernels in ``dtnn._kernels``): for a chunk of ``nb`` images,
``col`` is (C*R*S, nb*Ho*Wo) with row ``(c*R + r)*S + s`` and column
``(n*Ho + ho)*Wo + wo``.  Because the rows are ordered channel-major, the rows of group
``gi`` are the contiguous block ``[gi*Cg*R*S, (gi+1)*Cg*R*S)``, so a grouped convolution
is one *stacked* matmul::

    W (G, K/G, Cg*R*S)  @  col (G, Cg*R*S, cols)  ->  Y (G, K/G, cols)

The batch is processed in chunks sized so that the column workspace stays under
``workspace_bytes`` (at least one image per chunk).  The backward pass recomputes the
columns chunk by chunk instead of caching one huge matrix from the forward pass.

Workspaces are flat float32 buffers shared by all instances *within a thread* (layers
run one after the other, and nothing returned to the caller ever aliases them), so a
deep network does not pin one workspace per layer.

1x1 convolutions with stride 1 and no padding skip the unfolding: each image's
(C, H*W) block already *is* its column matrix, so the forward and backward-data run as
a batch of GEMMs straight from the input into the output, the batch split over the
threads with single-threaded GEMMs (``batch_split``); backward-weights runs fused.

Fused kernels.  On x86-64 CPUs with AVX2 + FMA or AVX-512F (``fused_available()``;
``fused_isa()`` says which path, ``DTNN_ISA`` caps it) the passes run by default on the
fused ("implicit im2col") C kernels of ``dtnn._kernels._im2col`` (csrc/im2col_fused*.c):
their GEMMs read a zero-padded copy of a block of images directly, so
there is no column matrix, no NCHW layout change and no dW temporary, and they are
parallel (OpenMP) over pixels and channels instead of alternating with OpenBLAS's
threads.  The unfold/GEMM path above remains for the 1x1 forward (a plain batched matmul at
stride 1), strided 1x1 convolutions, backward-data with stride > 1 or with much less
than "same" padding, filters with fewer than ``fused_min_channels`` channels per group
(depthwise), batches of fewer than ``fused_min_pixels`` output pixels, and other CPUs.  Measured on the VGG 3x3 layers at 1 thread, batch 64:
1.5-2.2x faster than unfold + OpenBLAS in each pass, 0.8-1.2x torch's time.
``Im2ColConv(fused=False)`` forces the unfold/GEMM path.
"""
from __future__ import annotations

import importlib
import threading
from typing import Optional

import numpy as np

from dtnn._kernels import col2im, im2col, resolve
from dtnn.conv import im2col_fused as _fused_twins
from dtnn.conv.batch_split import split_batch
from dtnn.conv.base import CONV_ALGORITHMS, ConvAlgorithm, ConvGeometry, bias_grad_into
from dtnn.conv.layout import swap01_into
from dtnn.gemm import available as gemm_available, gemm_into, matmul
from dtnn.threads import one_pool, pool_threads

_local = threading.local()

fused_forward = resolve("fused_forward", "dtnn._kernels._im2col", _fused_twins)
fused_backward_data = resolve("fused_backward_data", "dtnn._kernels._im2col", _fused_twins)
fused_backward_weights = resolve("fused_backward_weights", "dtnn._kernels._im2col",
                                 _fused_twins)


def _fused_module():
    if fused_forward is _fused_twins.fused_forward:
        return None       # DTNN_KERNELS=numpy or no extension: the twins are no faster
    try:
        mod = importlib.import_module("dtnn._kernels._im2col")
        return mod if hasattr(mod, "fused_isa") else None
    except ImportError:
        return None


_EXT = _fused_module()


def fused_isa() -> Optional[str]:
    """The fused kernels' path that runs now ('avx512' or 'avx2'), or None when they
    cannot run (no AVX2, DTNN_ISA=generic/numpy, or no extension)."""
    return _EXT.fused_isa() if _EXT is not None else None


def fused_available() -> bool:
    """Whether the fused kernels are compiled in and run on this CPU at the active ISA
    level (AVX2 + FMA or AVX-512F)."""
    return _EXT is not None and bool(_EXT.fused_supported())


def _workspace(name: str, size: int) -> np.ndarray:
    """A flat float32 buffer of exactly ``size`` elements (a prefix of a cached one)."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    buf = pool.get(name)
    if buf is None or buf.size < size:
        buf = pool[name] = np.empty(size, np.float32)
    return buf[:size]


def _fused_ws(size: int) -> np.ndarray:
    """Scratch for the fused kernels (the thread's shared "fused" workspace)."""
    return _workspace("fused", size)


def release_workspaces() -> None:
    """Drop this thread's cached workspaces (they are re-allocated on demand)."""
    _local.pool = {}


def _reshape_view(a: np.ndarray, shape) -> Optional[np.ndarray]:
    """``a`` reshaped without copying, or None when that is impossible."""
    try:
        return np.reshape(a, shape, copy=False)
    except (ValueError, TypeError):  # TypeError: numpy < 2.1 has no copy= here
        return None


@CONV_ALGORITHMS.register("im2col")
class Im2ColConv(ConvAlgorithm):
    """Fused implicit-im2col kernels where they apply, else im2col + GEMM chunked over
    the batch."""

    #: target size of the column workspace (bytes); at least one image per chunk
    workspace_bytes: int = 4 << 20
    #: run the fused kernels where they apply (and the CPU has them)
    fused: bool = True
    #: the fused kernels compute 16 output channels at a time (forward: K/groups,
    #: backward-data: C/groups, backward-weights: K/groups); below this many per group
    #: the unfold/GEMM path wastes less
    fused_min_channels: int = 8
    #: nor below this many output pixels in the batch (N*Ho*Wo): packing the filters
    #: and transposing dW^T then cost more than the arithmetic (measured: 256->512 on
    #: 4x4 images at batch 1-4 is 1.4-2.7x faster by unfold + GEMM)
    fused_min_pixels: int = 128

    def __init__(self, workspace_bytes: Optional[int] = None, fused: Optional[bool] = None):
        if workspace_bytes is not None:
            self.workspace_bytes = int(workspace_bytes)
        if fused is not None:
            self.fused = bool(fused)

    # --- which passes run fused ----------------------------------------------------
    def _fused_ok(self, g: ConvGeometry, out_channels: int, direct_ok: bool = False) -> bool:
        ho, wo = g.out_hw
        if not (self.fused and fused_available() and g.N * ho * wo >= self.fused_min_pixels):
            return False
        if out_channels // g.groups >= self.fused_min_channels:
            return True
        # the direct path of short reductions (first layers) puts output pixels, not
        # channels, in the vector lanes: few output channels waste nothing there
        # (lenet's 1->6 5x5 forward was 1.44x torch's time by unfold + GEMM at 2 threads)
        return direct_ok and bool(_EXT.fused_direct(g.C, g.R, g.S, g.groups, g.stride[1], wo))

    @staticmethod
    def _strided_1x1(g: ConvGeometry) -> bool:
        # the fused kernels' padded block copies every input pixel; a strided 1x1 reads
        # a quarter of them, and its unfold/GEMM is as fast or faster (measured)
        return g.R == 1 and g.S == 1 and g.stride != (1, 1)

    def fused_forward_ok(self, g: ConvGeometry) -> bool:
        # 1x1/stride 1: the batched matmul straight from x is as fast (measured)
        return (self._fused_ok(g, g.K, direct_ok=True) and not self._is_pointwise(g)
                and not self._strided_1x1(g))

    def fused_weights_ok(self, g: ConvGeometry) -> bool:
        return self._fused_ok(g, g.K, direct_ok=True) and not self._strided_1x1(g)

    def fused_data_ok(self, g: ConvGeometry) -> bool:
        """Stride 1 only (dx is then a convolution of dy); and the kernel computes every
        tap of every input pixel, so it must not pad dy much more than the forward
        padded x (a 'valid' 5x5 on 12x12 would do 2.25x the work).  Not 1x1/stride 1:
        like the forward, dx = W^T dy per image is faster (benchmarks/results/
        pointwise.md: 1.15-1.5x at 1 thread on the AVX2 paths)."""
        ho, wo = g.out_hw
        return (self._fused_ok(g, g.C) and g.stride == (1, 1) and not self._is_pointwise(g)
                and g.padding[0] <= g.dilation[0] * (g.R - 1)
                and g.padding[1] <= g.dilation[1] * (g.S - 1)
                and g.H * g.W <= 1.3 * ho * wo)

    @staticmethod
    def _gargs(g: ConvGeometry):
        return (g.stride[0], g.stride[1], g.padding[0], g.padding[1], g.dilation[0],
                g.dilation[1], g.groups)

    # --- helpers ----------------------------------------------------------------------
    @staticmethod
    def _is_pointwise(g: ConvGeometry) -> bool:
        return (g.R == 1 and g.S == 1 and g.stride == (1, 1) and g.padding == (0, 0))

    def chunk_size(self, g: ConvGeometry) -> int:
        """Images per chunk so that the column workspace fits ``workspace_bytes``."""
        ho, wo = g.out_hw
        per_image = g.C * g.R * g.S * ho * wo * 4
        return int(max(1, min(g.N, self.workspace_bytes // max(per_image, 1))))

    @staticmethod
    def _kargs(g: ConvGeometry):
        return (g.R, g.S, g.stride[0], g.stride[1], g.padding[0], g.padding[1],
                g.dilation[0], g.dilation[1])

    # --- forward ----------------------------------------------------------------------
    def forward(self, x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray],
                g: ConvGeometry) -> np.ndarray:
        N, C, K, G = g.N, g.C, g.K, g.groups
        ho, wo = g.out_hw
        P = ho * wo
        Kg, Cg = K // G, C // G
        crs = Cg * g.R * g.S
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.fused_forward_ok(g):
            return fused_forward(x, w, b, *self._gargs(g), workspace=_fused_ws)
        wm = np.ascontiguousarray(w, dtype=np.float32).reshape(G, Kg, crs)
        y = np.empty((N, K, ho, wo), np.float32)
        y3 = y.reshape(N, K, P)

        if self._is_pointwise(g):
            # y[n] = W @ x[n] for every image, no workspace
            if _pointwise_on_team(G):
                # the OpenMP team takes the images (dtnn/gemm.py); Python threads here
                # would run against its spinning workers.  The GEMM adds its products
                # to the bias already in y (beta 1): no second pass over y.
                if b is not None:
                    np.copyto(y3, b.reshape(1, K, 1))
                gemm_into(wm, x.reshape(N, C, P), y3, beta=0.0 if b is None else 1.0)
                return y
            # else the batch split over Python threads, each GEMM single-threaded
            # (dtnn/conv/batch_split.py)
            x4, y4 = x.reshape(N, G, Cg, P), y.reshape(N, G, Kg, P)

            def images(lo: int, hi: int) -> None:
                np.matmul(wm, x4[lo:hi], out=y4[lo:hi])
                if b is not None:
                    y3[lo:hi] += b.reshape(1, K, 1)
            split_batch(images, N, 2.0 * N * K * Cg * P)
            return y

        kargs = self._kargs(g)
        rows = C * g.R * g.S
        chunk = self.chunk_size(g)
        col_ws = _workspace("col", rows * chunk * P)
        y_ws = _workspace("y", K * chunk * P) if chunk > 1 else None
        for n0 in range(0, N, chunk):
            nb = min(chunk, N - n0)
            cols = nb * P
            col = im2col(x[n0:n0 + nb], *kargs, out=col_ws[:rows * cols].reshape(rows, cols))
            if nb == 1:
                # (K, P) is already the output layout of one image: write straight into y
                matmul(wm, col.reshape(G, crs, cols), out=y3[n0].reshape(G, Kg, P))
            else:
                ym = y_ws[:K * cols].reshape(G, Kg, cols)
                matmul(wm, col.reshape(G, crs, cols), out=ym)
                swap01_into(ym.reshape(K, nb, P), y3[n0:n0 + nb])  # tuned layout change
            if b is not None:
                y3[n0:n0 + nb] += b.reshape(1, K, 1)
        return y

    # --- backward ---------------------------------------------------------------------
    def backward(self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, g: ConvGeometry,
                 need_dx: bool, dw_out: np.ndarray, db_out: Optional[np.ndarray]
                 ) -> Optional[np.ndarray]:
        N, C, H, W, K, G = g.N, g.C, g.H, g.W, g.K, g.groups
        ho, wo = g.out_hw
        P = ho * wo
        Kg, Cg = K // G, C // G
        crs = Cg * g.R * g.S
        x = np.ascontiguousarray(x, dtype=np.float32)
        dy = np.ascontiguousarray(dy, dtype=np.float32)
        wm = np.ascontiguousarray(w, dtype=np.float32).reshape(G, Kg, crs)
        dy3 = dy.reshape(N, K, P)

        dx = np.empty((N, C, H, W), np.float32) if need_dx else None
        fused_dw = self.fused_weights_ok(g)
        # 1x1 layers: the pointwise kernel sums db from the dy rows it already holds
        db_fused = (fused_dw and db_out is not None and db_out.dtype == np.float32
                    and db_out.shape == (K,) and db_out.flags.c_contiguous
                    and db_out.flags.writeable
                    and _fused_twins.fused_pointwise(g.R, g.S, *g.stride, *g.padding, ho, wo))
        if db_out is not None and not db_fused:
            bias_grad_into(dy3, db_out)

        fused_dx = need_dx and self.fused_data_ok(g)
        if fused_dw:
            # written straight into dw_out when it is a contiguous float32 array
            dwv = _reshape_view(dw_out, (K, Cg, g.R, g.S))
            ok = (dwv is not None and dwv.dtype == np.float32 and dwv.flags.c_contiguous
                  and dwv.flags.writeable)
            dw = fused_backward_weights(dy, x, g.R, g.S, *self._gargs(g),
                                        out=dwv if ok else None, workspace=_fused_ws,
                                        db=db_out if db_fused else None)
            if not ok:
                np.copyto(dw_out, dw.reshape(dw_out.shape))
        if fused_dx:
            fused_backward_data(dy, w, H, W, g.padding[0], g.padding[1], g.dilation[0],
                                g.dilation[1], G, out=dx, workspace=_fused_ws)
        if fused_dw and (fused_dx or not need_dx):
            return dx

        # dW is accumulated chunk by chunk: the first chunk writes dw straight into dw_out
        dw_acc = None
        dwv = None
        if not fused_dw:
            dwv = _reshape_view(dw_out, (G, Kg, crs))
            dw_acc = dwv if dwv is not None else np.empty((G, Kg, crs), np.float32)

        dx_left = None if fused_dx else dx
        if self._is_pointwise(g):
            self._backward_pointwise(dy3, x, wm, g, dw_acc, dx_left)
        else:
            self._backward_general(dy3, x, wm, g, dw_acc, dx_left)

        if dw_acc is not None and dwv is None:
            np.copyto(dw_out, dw_acc.reshape(dw_out.shape))
        return dx

    def _backward_general(self, dy3, x, wm, g: ConvGeometry, dw_acc, dx) -> None:
        """dW into ``dw_acc`` and/or dx into ``dx`` (either may be None) by unfold/GEMM."""
        N, C, H, W, K, G = g.N, g.C, g.H, g.W, g.K, g.groups
        P = dy3.shape[2]
        Kg, Cg = K // G, C // G
        crs = Cg * g.R * g.S
        rows = C * g.R * g.S
        kargs = self._kargs(g)
        chunk = self.chunk_size(g)
        want_dw = dw_acc is not None
        col_ws = _workspace("col", rows * chunk * P) if want_dw else None
        dy_ws = _workspace("y", K * chunk * P) if chunk > 1 else None
        dcol_ws = _workspace("dcol", rows * chunk * P) if dx is not None else None
        dw_tmp = (_workspace("dw", G * Kg * crs).reshape(G, Kg, crs)
                  if want_dw and N > chunk else None)
        wt = wm.transpose(0, 2, 1)  # (G, crs, Kg)
        for n0 in range(0, N, chunk):
            nb = min(chunk, N - n0)
            cols = nb * P
            if nb == 1:
                dym = dy3[n0].reshape(G, Kg, cols)
            else:
                dym = dy_ws[:K * cols].reshape(G, Kg, cols)
                dym.reshape(K, nb, P)[...] = dy3[n0:n0 + nb].transpose(1, 0, 2)
            if want_dw:
                col = im2col(x[n0:n0 + nb], *kargs,
                             out=col_ws[:rows * cols].reshape(rows, cols))
                colT = col.reshape(G, crs, cols).transpose(0, 2, 1)
                if n0 == 0:
                    matmul(dym, colT, out=dw_acc)
                else:
                    matmul(dym, colT, out=dw_tmp)
                    dw_acc += dw_tmp
            if dx is not None:
                dcol = dcol_ws[:rows * cols].reshape(rows, cols)
                if Kg == 1:
                    # depthwise: each group's product is an outer product; numpy's
                    # matmul is slow for an inner dimension of 1, broadcasting is not
                    np.multiply(wt, dym, out=dcol.reshape(G, crs, cols))
                else:
                    matmul(wt, dym, out=dcol.reshape(G, crs, cols))
                col2im(dcol, nb, C, H, W, *kargs, out=dx[n0:n0 + nb])

    def _backward_pointwise(self, dy3, x, wm, g: ConvGeometry, dw_acc, dx) -> None:
        N, C, K, G = g.N, g.C, g.K, g.groups
        P = dy3.shape[2]
        Kg, Cg = K // G, C // G
        dy4 = dy3.reshape(N, G, Kg, P)
        x4 = x.reshape(N, G, Cg, P)
        # dW = sum_n dy[n] @ x[n]^T, in chunks that bound the (nb, G, Kg, Cg) temporary
        # as well as the slice of x each chunk streams through
        per_image = G * Kg * Cg * 4
        chunk = int(max(1, min(self.chunk_size(g), self.workspace_bytes // per_image)))
        tmp_ws = _workspace("dw", chunk * G * Kg * Cg) if dw_acc is not None else None
        for n0 in range(0, N if dw_acc is not None else 0, chunk):
            nb = min(chunk, N - n0)
            tmp = tmp_ws[:nb * G * Kg * Cg].reshape(nb, G, Kg, Cg)
            np.matmul(dy4[n0:n0 + nb], x4[n0:n0 + nb].transpose(0, 1, 3, 2), out=tmp)
            if n0 == 0:
                np.sum(tmp, axis=0, out=dw_acc)
            else:
                dw_acc += tmp.sum(axis=0)
        if dx is not None and _pointwise_on_team(G):
            # on the OpenMP team, as in forward
            gemm_into(wm.transpose(0, 2, 1), dy4.reshape(N, K, P), dx.reshape(N, C, P))
        elif dx is not None:
            wt, dx4 = wm.transpose(0, 2, 1), dx.reshape(N, G, Cg, P)
            split_batch(lambda lo, hi: np.matmul(wt, dy4[lo:hi], out=dx4[lo:hi]), N,
                        2.0 * N * K * Cg * P)


def _pointwise_on_team(groups: int) -> bool:
    """Whether the 1x1 passes run as one GEMM call on dtnn's OpenMP team: one group and
    the one-pool setting (dtnn.threads) -- or one thread, so that every thread count
    computes each image the same way and gives the same bits.  With the BLAS threaded
    (DTNN_ONE_POOL=0) the batch is split over Python threads instead."""
    return groups == 1 and gemm_available() and (one_pool() or pool_threads() <= 1)


@CONV_ALGORITHMS.register("im2col1")
class Im2ColPerImageConv(Im2ColConv):
    """im2col with one image per chunk: each image's GEMM writes straight into the
    output, so there is no (K, nb, P) -> NCHW layout change and the column buffer stays
    small.  Measured 1.6-2.4x faster than the chunked default (forward + backward) on
    first layers with 1-3 input channels; BestOf races it where the default would
    chunk several images.  It never uses the fused kernels, so it is also the plain
    unfold/GEMM alternative to the default on CPUs where those are slower."""

    workspace_bytes = 1
    fused = False

    def worth_tuning(self, g: ConvGeometry) -> bool:
        default = Im2ColConv()
        if (default.fused_forward_ok(g) and default.fused_weights_ok(g)
                and default.fused_data_ok(g)):
            return False      # the fused default does all three passes 1.5-3x faster
        return not self._is_pointwise(g) and default.chunk_size(g) > 1
