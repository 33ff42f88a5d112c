"""Winograd backward-weights: the output-gradient (``winograd_dy``) and filter-gradient
(``winograd_dfilter``) kernels against their numpy twins and as adjoints of the forward
transforms, and the whole dw / db against a float64 reference.

Measured normwise errors ||dw - dw64|| / ||dw64|| on unit normal data: F(2x2) 1e-7..6e-7
(like im2col), F(4x4) 1e-6..3.5e-6 (64-256 channels, batch 64); on non-negative inputs
(post-ReLU) with biased gradients all three are ~1e-7..3.5e-7.  Bounds: 2e-6 / 2e-5.
"""
import numpy as np
import pytest

from dtnn.conv import CONV_ALGORITHMS, ConvGeometry
from dtnn.conv import kernels as K_
from dtnn.conv.winograd import (BACKWARD_WEIGHTS, DW_MIN_CHANNELS, DW_MIN_TILES, WinogradConv,
                                _rows, tile_count)

TOL = {2: 2e-6, 4: 2e-5}


def _padded(a2, r, t, pad=16, fill=np.nan):
    buf = np.full(a2 * (r * t + pad), fill, np.float32)
    return _rows(buf, a2, r * t + pad, r, t)


def _dw64(dy, x, g):
    """float64 dw and db by explicit tap sums."""
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    ph, pw = g.padding
    ho, wo = g.out_hw
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dw = np.empty((g.K, g.C, 3, 3))
    for r in range(3):
        for s in range(3):
            dw[:, :, r, s] = np.tensordot(dy, xp[:, :, r:r + ho, s:s + wo],
                                          axes=([0, 2, 3], [0, 2, 3]))
    return dw, dy.sum(axis=(0, 2, 3))


def _err(a, ref):
    return float(np.linalg.norm(a.astype(np.float64) - ref) / np.linalg.norm(ref))


# --- kernels ------------------------------------------------------------------------------
@pytest.mark.parametrize("m", [2, 4])
def test_dy_matches_twin(m):
    rng = np.random.default_rng(20)
    # nb >= 16: full vectors (+ a partial tail for 19); Wo = 8, 16: whole 8-float rows,
    # odd sizes: scalar tails and tiles past the edge; nb = 1: partial vectors only
    for nb, K, Ho, Wo in [(16, 3, 8, 8), (19, 2, 16, 16), (17, 3, 9, 13), (1, 5, 7, 5),
                          (32, 2, 10, 12), (2, 3, 4, 4), (1, 1, 1, 3)]:
        th, tw = tile_count(Ho, m), tile_count(Wo, m)
        a2, T = (m + 2) ** 2, nb * th * tw
        dy = rng.standard_normal((nb, K, Ho, Wo)).astype(np.float32)
        ref = K_.winograd_dy(dy, m, th, tw)
        assert ref.shape == (a2, K, T)
        np.testing.assert_allclose(K_.compiled_winograd_dy(dy, m, th, tw), ref,
                                   rtol=1e-5, atol=1e-4)
        D = _padded(a2, K, T)
        assert K_.compiled_winograd_dy(dy, m, th, tw, out=D) is D
        np.testing.assert_allclose(D, ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("m", [2, 4])
def test_dfilter_matches_twin(m):
    rng = np.random.default_rng(21)
    a2 = (m + 2) ** 2
    for K, C in [(3, 5), (7, 16), (33, 40), (1, 1)]:
        dU = rng.standard_normal((a2, K, C)).astype(np.float32)
        ref = K_.winograd_dfilter(dU, m)
        np.testing.assert_allclose(K_.compiled_winograd_dfilter(dU, m), ref,
                                   rtol=1e-5, atol=1e-5)
        Up = _padded(a2, K, C)
        Up[...] = dU
        out = np.full((K, C, 3, 3), np.nan, np.float32)
        assert K_.compiled_winograd_dfilter(Up, m, out=out) is out
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
        base = rng.standard_normal((K, C, 3, 3)).astype(np.float32)
        acc = base.copy()
        K_.compiled_winograd_dfilter(Up, m, True, out=acc)
        np.testing.assert_allclose(acc, base + ref, rtol=1e-5, atol=1e-5)
        acc = base.copy()
        K_.winograd_dfilter(dU, m, True, out=acc)
        np.testing.assert_allclose(acc, base + ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("impl", ["twin", "compiled"])
def test_kernels_are_adjoints_of_the_forward_transforms(m, impl):
    """<output(M), dy> = <M, dy_transform(dy)> and <filter(w), dU> = <w, dfilter(dU)>."""
    rng = np.random.default_rng(22)
    pre = "" if impl == "twin" else "compiled_"
    dyf, dff = getattr(K_, pre + "winograd_dy"), getattr(K_, pre + "winograd_dfilter")
    a2 = (m + 2) ** 2
    nb, K, C, Ho, Wo = 3, 4, 5, 7, 9
    th, tw = tile_count(Ho, m), tile_count(Wo, m)
    M = rng.standard_normal((a2, K, nb * th * tw)).astype(np.float32)
    dy = rng.standard_normal((nb, K, Ho, Wo)).astype(np.float32)
    lhs = np.vdot(K_.winograd_output(M, None, nb, Ho, Wo, m, th, tw).astype(np.float64), dy)
    rhs = np.vdot(M.astype(np.float64), dyf(dy, m, th, tw))
    assert abs(lhs - rhs) <= 1e-5 * (abs(lhs) + np.linalg.norm(M) * np.linalg.norm(dy))
    w = rng.standard_normal((K, C, 3, 3)).astype(np.float32)
    dU = rng.standard_normal((a2, K, C)).astype(np.float32)
    lhs = np.vdot(K_.winograd_filter(w, m).astype(np.float64), dU)
    rhs = np.vdot(w.astype(np.float64), dff(dU, m))
    assert abs(lhs - rhs) <= 1e-5 * (abs(lhs) + np.linalg.norm(w) * np.linalg.norm(dU))


def test_kernels_reject_bad_arguments():
    with pytest.raises(ValueError):
        K_.compiled_winograd_dy(np.zeros((1, 1, 9, 8), np.float32), 4, 2, 2)  # 8 < 9 rows
    with pytest.raises(ValueError):
        K_.compiled_winograd_dfilter(np.zeros((16, 2, 2), np.float32), 4)     # 16 != 36
    with pytest.raises(ValueError):
        K_.compiled_winograd_dfilter(np.zeros((36, 2, 2), np.float32), 4, True)  # no out


# --- the whole backward-weights ----------------------------------------------------------
G_ = ConvGeometry
SHAPES = [
    G_(2, 5, 9, 7, 6, 3, 3, (1, 1), (1, 1)),        # odd sizes, same padding
    G_(1, 8, 16, 16, 8, 3, 3, (1, 1), (0, 0)),      # batch 1, valid
    G_(3, 4, 6, 6, 5, 3, 3, (1, 1), (2, 2)),        # padding 2
    G_(2, 3, 5, 11, 4, 3, 3, (1, 1), (1, 0)),       # asymmetric padding
    G_(1, 3, 4, 4, 2, 3, 3, (1, 1), (1, 1)),        # tiny image, one tile
    G_(1, 2, 3, 3, 3, 3, 3, (1, 1), (0, 0)),        # 1x1 output
    G_(1, 1, 3, 3, 1, 3, 3, (1, 1), (0, 0)),        # one channel, one tile: (a², 1, 1)
    G_(37, 6, 9, 10, 5, 3, 3, (1, 1), (1, 1)),      # several chunks, partial vectors
    G_(20, 17, 8, 8, 19, 3, 3, (1, 1), (1, 1)),     # channels past a vector of 16
    G_(4, 16, 13, 15, 32, 3, 3, (1, 1), (1, 1)),
]


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("g", SHAPES, ids=lambda g: g.tag())
def test_backward_weights_matches_float64(m, g):
    rng = np.random.default_rng(23)
    x = rng.standard_normal((g.N, g.C, g.H, g.W)).astype(np.float32)
    w = rng.standard_normal((g.K, g.C, 3, 3)).astype(np.float32)
    ho, wo = g.out_hw
    dy = rng.standard_normal((g.N, g.K, ho, wo)).astype(np.float32)
    dwr, dbr = _dw64(dy, x, g)
    # the default budget (one chunk here) and small ones (several chunks, when dU is
    # small enough to allow them)
    chunks = set()
    for ws in (None, 1 << 12, 1 << 16):
        alg = WinogradConv(tile=m, backward_weights="winograd", dw_workspace_bytes=ws)
        assert alg.weights_path(g, m) == "winograd"
        chunks.add(alg.dw_chunk_size(g.C, g.K, tile_count(ho, m) * tile_count(wo, m), m, g.N))
        dw = np.full_like(w, np.nan)
        db = np.full(g.K, np.nan, np.float32)
        assert alg.backward(dy, x, w, g, False, dw, db) is None
        assert _err(dw, dwr) < TOL[m], (ws, _err(dw, dwr))
        assert _err(db, dbr) < 2e-6
        dw2 = np.full_like(w, np.nan)                 # no bias; with backward-data
        dx = alg.backward(dy, x, w, g, True, dw2, None)
        assert dx.shape == x.shape
        np.testing.assert_array_equal(dw2, dw)
    if g.N == 37:
        assert min(chunks) < g.N                      # several chunks really ran


@pytest.mark.parametrize("name", ["winograd2", "winograd4"])
def test_single_channel_single_tile_forward(name):
    """(alpha², 1, 1) workspaces: numpy may give their length-1 axes any stride."""
    g = G_(1, 1, 3, 3, 1, 3, 3, (1, 1), (0, 0))
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    w = np.ones((1, 1, 3, 3), np.float32)
    y = CONV_ALGORITHMS.get(name)().forward(x, w, None, g)
    np.testing.assert_allclose(y.ravel(), [36.0], rtol=1e-5)


def test_dw_chunk_size():
    alg = WinogradConv(tile=4)
    for C, K, tiles, N in [(64, 64, 64, 64), (256, 256, 4, 64), (256, 512, 1, 64),
                           (512, 512, 1, 1024), (3, 5, 9, 37)]:
        chunk = alg.dw_chunk_size(C, K, tiles, 4, N)
        per_image = 36 * (C + K) * tiles * 4
        assert 1 <= chunk <= N
        if chunk < N:            # the budget is >= 2 dU, capped, and >= dw_workspace_bytes
            budget = max(alg.dw_workspace_bytes, min(2 * 36 * K * C * 4, 64 << 20))
            assert chunk * per_image <= budget
    assert alg.dw_chunk_size(256, 256, 4, 4, 64) == 64   # 8x8 layer: one chunk


def test_backward_weights_into_a_strided_dw():
    """dw_out that is not a contiguous float32 array is filled through a copy."""
    rng = np.random.default_rng(24)
    g = G_(4, 6, 8, 8, 5, 3, 3, (1, 1), (1, 1))
    x = rng.standard_normal((g.N, g.C, g.H, g.W)).astype(np.float32)
    w = rng.standard_normal((g.K, g.C, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((g.N, g.K, 8, 8)).astype(np.float32)
    dwr, dbr = _dw64(dy, x, g)
    big = np.full((g.K, 2 * g.C, 3, 3), np.nan, np.float32)
    dw = big[:, ::2]
    db = np.full(2 * g.K, np.nan, np.float32)[::2]
    WinogradConv(tile=4, backward_weights="winograd").backward(dy, x, w, g, False, dw, db)
    assert _err(dw, dwr) < TOL[4] and _err(db, dbr) < 2e-6
    assert np.isnan(big[:, 1::2]).all()


@pytest.mark.parametrize("m", [2, 4])
def test_winograd_and_im2col_weights_agree(m):
    rng = np.random.default_rng(25)
    g = G_(16, 32, 12, 12, 48, 3, 3, (1, 1), (1, 1))
    x = rng.standard_normal((g.N, g.C, g.H, g.W)).astype(np.float32)
    w = rng.standard_normal((g.K, g.C, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((g.N, g.K, 12, 12)).astype(np.float32)
    dwr, dbr = _dw64(dy, x, g)
    for path in ("winograd", "im2col"):
        alg = CONV_ALGORITHMS.get(f"winograd{m}")(backward_weights=path)
        assert alg.weights_path(g, m) == path
        dw, db = np.empty_like(w), np.empty(g.K, np.float32)
        alg.backward(dy, x, w, g, False, dw, db)
        assert _err(dw, dwr) < TOL[m] and _err(db, dbr) < 2e-6


def test_auto_weights_path():
    alg = WinogradConv()
    assert alg.backward_weights == "auto" and "auto" in BACKWARD_WEIGHTS
    for m in (2, 4):
        c = DW_MIN_CHANNELS[m]
        big = G_(64, c, 16, 16, 2 * c, 3, 3, (1, 1), (1, 1))
        assert alg.weights_path(big, m) == "winograd"
        assert alg.weights_path(big.with_batch(1), m) == "im2col"              # batch 1
        narrow = G_(64, c // 2, 16, 16, 2 * c, 3, 3, (1, 1), (1, 1))
        assert alg.weights_path(narrow, m) == "im2col"                         # channels
        # too few tiles in all: 2 images of 4x4 outputs
        few = G_(2, c, 4, 4, c, 3, 3, (1, 1), (1, 1))
        assert (2 * tile_count(4, m) ** 2 >= DW_MIN_TILES[m]) == (
            alg.weights_path(few, m) == "winograd")
    with pytest.raises(ValueError):
        WinogradConv(backward_weights="direct")
