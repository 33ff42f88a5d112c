"""Winograd C kernels against their numpy twins, on the shapes that take the vector paths
(16 images / filters per vector, image rows of 8+ floats), the partial-vector tails,
position-padded V / M / U buffers, and the chunking of the whole convolution."""
import numpy as np
import pytest

from dtnn.conv import CONV_ALGORITHMS, ConvGeometry
from dtnn.conv import kernels as K_
from dtnn.conv.winograd import LANES, WinogradConv, _position_stride, _rows

#: the transforms' compiled paths: tests taking ``isa_level`` run once per path (conftest.py)
ISA_LEVELS = ("avx2", "generic")


def _padded(a2, r, t, pad=16):
    buf = np.full(a2 * (r * t + pad), np.nan, np.float32)
    return _rows(buf, a2, r * t + pad, r, t)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("flip", [False, True])
def test_filter_matches_twin(m, flip, isa_level):
    rng = np.random.default_rng(10)
    for K, C in [(3, 5), (7, 16), (33, 40)]:
        w = rng.standard_normal((K, C, 3, 3)).astype(np.float32)
        ref = K_.winograd_filter(w, m, flip)
        np.testing.assert_allclose(K_.compiled_winograd_filter(w, m, flip), ref,
                                   rtol=1e-5, atol=1e-6)
        out = _padded((m + 2) ** 2, K, C)
        assert K_.compiled_winograd_filter(w, m, flip, out=out) is out
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_flipped_filter_is_the_rotated_filter():
    rng = np.random.default_rng(11)
    w = rng.standard_normal((4, 6, 3, 3)).astype(np.float32)
    rot = np.ascontiguousarray(w[:, :, ::-1, ::-1])
    np.testing.assert_allclose(K_.compiled_winograd_filter(w, 4, True),
                               K_.compiled_winograd_filter(rot, 4), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("m", [2, 4])
def test_input_and_output_match_twins_on_vector_paths(m, isa_level):
    rng = np.random.default_rng(12)
    # nb >= 16: full vectors (+ a partial tail for 19); W = 8, 16: whole 8-float rows,
    # W = 13: rows with a scalar tail; padding 0..2
    for nb, C, H, W, p in [(16, 3, 8, 8, 1), (19, 2, 16, 16, 1), (17, 3, 9, 13, 2),
                           (32, 2, 10, 12, 0)]:
        Ho, Wo = H + 2 * p - 2, W + 2 * p - 2
        th, tw = -(-Ho // m), -(-Wo // m)
        a2, T = (m + 2) ** 2, nb * th * tw
        x = rng.standard_normal((nb, C, H, W)).astype(np.float32)
        ref = K_.winograd_input(x, p, p, m, th, tw)
        np.testing.assert_allclose(K_.compiled_winograd_input(x, p, p, m, th, tw), ref,
                                   atol=1e-4)
        V = _padded(a2, C, T)
        K_.compiled_winograd_input(x, p, p, m, th, tw, out=V)
        np.testing.assert_allclose(V, ref, atol=1e-4)

        M = _padded(a2, 5, T)
        M[...] = rng.standard_normal(M.shape)
        b = rng.standard_normal(5).astype(np.float32)
        ref = K_.winograd_output(np.ascontiguousarray(M), b, nb, Ho, Wo, m, th, tw)
        np.testing.assert_allclose(K_.compiled_winograd_output(M, b, nb, Ho, Wo, m, th, tw),
                                   ref, atol=1e-4)


def test_input_rejects_tiles_that_do_not_cover_the_image():
    x = np.zeros((1, 1, 8, 8), np.float32)
    with pytest.raises(ValueError):
        K_.compiled_winograd_input(x, 1, 1, 4, 2, 1)   # tw = 1 covers 6 < 10 columns


@pytest.mark.parametrize("N", [1, 5, 16, 35, 64, 100])
def test_chunk_size(N):
    alg = WinogradConv(tile=4)
    for C, K, tiles in [(64, 128, 16), (256, 256, 4), (512, 512, 64)]:
        chunk = alg.chunk_size(C, K, tiles, 4, N)
        per_image = 36 * (C + K) * tiles * 4
        assert 1 <= chunk <= N
        if chunk < N:
            assert chunk * per_image <= alg.workspace_bytes
            if chunk >= LANES:
                assert chunk % LANES == 0


def test_position_stride_breaks_power_of_two_alignment():
    for n in (1, 1000, 1024, 4096 * 36, 65536):
        ps = _position_stride(n)
        assert ps >= n and (ps * 4) % 4096 == 64


@pytest.mark.parametrize("name", ["winograd2", "winograd4"])
def test_chunked_convolution_matches_im2col(name):
    """Several chunks, full and partial vectors of images, forward and backward-data."""
    rng = np.random.default_rng(13)
    g = ConvGeometry(37, 6, 9, 10, 5, 3, 3, (1, 1), (1, 1))
    x = rng.standard_normal((g.N, g.C, g.H, g.W)).astype(np.float32)
    w = rng.standard_normal((g.K, g.C, 3, 3)).astype(np.float32)
    b = rng.standard_normal(g.K).astype(np.float32)
    ref = CONV_ALGORITHMS.get("im2col")()
    yr = ref.forward(x, w, b, g)
    dy = rng.standard_normal(yr.shape).astype(np.float32)
    dxr = ref.backward(dy, x, w, g, True, np.empty_like(w), np.empty_like(b))
    for ws in (None, 1 << 16, 1 << 18):   # one chunk; small chunks; 16-image chunks + a tail
        alg = CONV_ALGORITHMS.get(name)(workspace_bytes=ws)
        y = alg.forward(x, w, b, g)
        tol = 2e-5 if name == "winograd4" else 2e-6
        assert np.linalg.norm(y - yr) / np.linalg.norm(yr) < tol
        dx = alg.backward(dy, x, w, g, True, np.empty_like(w), np.empty_like(b))
        assert np.linalg.norm(dx - dxr) / np.linalg.norm(dxr) < tol


def test_filter_kernel_is_listed():
    from dtnn._kernels import active
    assert "winograd_filter" in active()
