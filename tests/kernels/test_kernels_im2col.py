"""Compiled im2col/col2im against the numpy twins and against independent oracles.

The compiled module is imported directly (not through the dispatcher), so these tests
check the extension even when DTNN_KERNELS=numpy is set; they skip when it is not built.
"""
import itertools

import numpy as np
import pytest

from dtnn._kernels import twins

ext = pytest.importorskip(
    "dtnn._kernels._im2col",
    reason="compiled kernels not built (run `pip install -e .` or "
           "`python setup.py build_ext --inplace`)")


def _geometries():
    """(N, C, H, W, R, S, sh, sw, ph, pw, dh, dw) cases: hand-picked edge cases plus
    a seeded random sweep over strides 1-3, padding 0-2, dilation 1-2, kernels 1-5."""
    cases = [
        (1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1),    # 1x1 image, 1x1 kernel
        (1, 1, 3, 3, 3, 3, 1, 1, 0, 0, 1, 1),    # output 1x1
        (2, 3, 5, 5, 5, 5, 3, 3, 0, 0, 1, 1),    # output 1x1 with stride
        (1, 2, 3, 4, 5, 5, 1, 1, 2, 2, 1, 1),    # kernel larger than the image
        (1, 1, 5, 5, 3, 3, 1, 1, 2, 2, 2, 2),    # dilated, padded
        (2, 4, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1),    # the common 3x3 "same" conv
        (1, 5, 7, 9, 1, 1, 2, 3, 0, 0, 1, 1),    # 1x1 strided
        (3, 2, 9, 6, 2, 4, 3, 1, 2, 0, 2, 1),
        (1, 1, 2, 2, 1, 1, 3, 3, 2, 2, 1, 1),    # pure padding taps
        (1, 3, 11, 13, 5, 3, 2, 2, 2, 1, 2, 2),
        (2, 3, 20, 40, 3, 3, 1, 1, 1, 1, 1, 1),    # "same": one shifted copy per plane
        (2, 2, 9, 45, 3, 5, 1, 1, 0, 0, 1, 1),     # long rows copied row by row
        (3, 2, 6, 6, 3, 3, 1, 1, 3, 1, 2, 1),      # same width, rows partly padding
    ]
    rng = np.random.default_rng(1234)
    while len(cases) < 70:
        N, C = int(rng.integers(1, 4)), int(rng.integers(1, 6))
        H, W = int(rng.integers(1, 13)), int(rng.integers(1, 13))
        R, S = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        ph, pw = int(rng.integers(0, 3)), int(rng.integers(0, 3))
        dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        if twins.out_size(H, R, sh, ph, dh) < 1 or twins.out_size(W, S, sw, pw, dw) < 1:
            continue
        cases.append((N, C, H, W, R, S, sh, sw, ph, pw, dh, dw))
    return cases


GEOMS = _geometries()


def _ids(g):
    N, C, H, W, R, S, sh, sw, ph, pw, dh, dw = g
    return f"{N}x{C}x{H}x{W}-k{R}x{S}-s{sh}{sw}-p{ph}{pw}-d{dh}{dw}"


def _x(g, seed=0):
    N, C, H, W = g[:4]
    return np.random.default_rng(seed).standard_normal((N, C, H, W)).astype(np.float32)


def _col_shape(g):
    N, C, H, W, R, S, sh, sw, ph, pw, dh, dw = g
    Ho = twins.out_size(H, R, sh, ph, dh)
    Wo = twins.out_size(W, S, sw, pw, dw)
    return C * R * S, N * Ho * Wo


@pytest.mark.parametrize("g", GEOMS, ids=_ids)
def test_im2col_matches_twin_exactly(g):
    x = _x(g)
    got = ext.im2col(x, *g[4:])
    want = twins.im2col(x, *g[4:])
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("g", GEOMS, ids=_ids)
def test_col2im_matches_twin(g):
    col = np.random.default_rng(1).standard_normal(_col_shape(g)).astype(np.float32)
    got = ext.col2im(col, *g)
    want = twins.col2im(col, *g)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("g", GEOMS[::3], ids=_ids)
def test_col2im_is_adjoint_of_im2col(g):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(g[:4]).astype(np.float32)
    c = rng.standard_normal(_col_shape(g)).astype(np.float32)
    lhs = np.dot(ext.im2col(x, *g[4:]).ravel().astype(np.float64), c.ravel().astype(np.float64))
    rhs = np.dot(x.ravel().astype(np.float64), ext.col2im(c, *g).ravel().astype(np.float64))
    scale = np.abs(x).sum() * np.abs(c).max() + 1.0
    assert abs(lhs - rhs) <= 1e-6 * scale


def _direct_conv_f64(x, w, sh, sw, ph, pw, dh, dw):
    """Convolution by explicit loops over output pixels and kernel taps (float64)."""
    N, C, H, W = x.shape
    K, _, R, S = w.shape
    Ho = twins.out_size(H, R, sh, ph, dh)
    Wo = twins.out_size(W, S, sw, pw, dw)
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    y = np.zeros((N, K, Ho, Wo))
    for ho, wo, r, s in itertools.product(range(Ho), range(Wo), range(R), range(S)):
        ih, iw = ho * sh - ph + r * dh, wo * sw - pw + s * dw
        if 0 <= ih < H and 0 <= iw < W:
            y[:, :, ho, wo] += x[:, :, ih, iw] @ w[:, :, r, s].T
    return y


@pytest.mark.parametrize("g", [
    (2, 3, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1),
    (1, 4, 10, 7, 3, 2, 2, 1, 2, 1, 2, 1),
    (3, 2, 6, 6, 1, 1, 2, 2, 0, 0, 1, 1),
], ids=_ids)
def test_im2col_gemm_equals_direct_convolution(g):
    N, C, H, W, R, S, sh, sw, ph, pw, dh, dw = g
    K = 5
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C, R, S)).astype(np.float32)
    col = ext.im2col(x, R, S, sh, sw, ph, pw, dh, dw).astype(np.float64)
    Ho = twins.out_size(H, R, sh, ph, dh)
    Wo = twins.out_size(W, S, sw, pw, dw)
    y = (w.reshape(K, -1).astype(np.float64) @ col).reshape(K, N, Ho, Wo).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(y, _direct_conv_f64(x, w, sh, sw, ph, pw, dh, dw),
                               rtol=1e-12, atol=1e-12)


def test_out_buffers_are_filled_and_returned():
    g = (2, 3, 8, 7, 3, 3, 2, 1, 1, 1, 1, 1)
    x = _x(g)
    col_out = np.full(_col_shape(g), np.nan, np.float32)
    col = ext.im2col(x, *g[4:], out=col_out)
    assert col is col_out
    np.testing.assert_array_equal(col, twins.im2col(x, *g[4:]))
    x_out = np.full(x.shape, np.nan, np.float32)  # overwritten, not accumulated
    res = ext.col2im(col, *g, out=x_out)
    assert res is x_out
    np.testing.assert_allclose(res, twins.col2im(col, *g), rtol=1e-5, atol=1e-6)


def test_non_contiguous_inputs_are_accepted():
    g = (2, 3, 6, 5, 2, 3, 1, 2, 1, 0, 1, 1)
    big = np.random.default_rng(4).standard_normal((2, 6, 6, 5)).astype(np.float32)
    x = big[:, ::2]                       # strided channel slice (like a conv group)
    assert not x.flags.c_contiguous
    np.testing.assert_array_equal(ext.im2col(x, *g[4:]), twins.im2col(x, *g[4:]))
    col = np.asfortranarray(np.random.default_rng(5).standard_normal(_col_shape(g)).astype(np.float32))
    np.testing.assert_allclose(ext.col2im(col, *g), twins.col2im(col, *g), rtol=1e-5, atol=1e-6)


def test_empty_batch():
    x = np.zeros((0, 2, 5, 5), np.float32)
    col = ext.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1)
    assert col.shape == (18, 0)
    assert ext.col2im(col, 0, 2, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1).shape == (0, 2, 5, 5)


@pytest.mark.parametrize("call", [
    lambda x: ext.im2col(x.astype(np.float64), 3, 3, 1, 1, 1, 1, 1, 1),   # dtype
    lambda x: ext.im2col(x[0], 3, 3, 1, 1, 1, 1, 1, 1),                   # 3-D
    lambda x: ext.im2col(x.tolist(), 3, 3, 1, 1, 1, 1, 1, 1),             # not an array
    lambda x: ext.im2col(x, 9, 3, 1, 1, 0, 1, 1, 1),                      # kernel too big
    lambda x: ext.im2col(x, 0, 3, 1, 1, 1, 1, 1, 1),                      # R = 0
    lambda x: ext.im2col(x, 3, 3, 0, 1, 1, 1, 1, 1),                      # stride 0
    lambda x: ext.im2col(x, 3, 3, 1, 1, -1, 1, 1, 1),                     # negative pad
    lambda x: ext.im2col(x, 3, 3, 1, 1, 1, 1, 0, 1),                      # dilation 0
    lambda x: ext.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1,
                         out=np.empty((27, 99), np.float32)),               # out shape
    lambda x: ext.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1,
                         out=np.empty((27, 2 * 36), np.float64)),           # out dtype
    lambda x: ext.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1,
                         out=np.empty((2 * 36, 27), np.float32).T),         # out layout
    lambda x: ext.col2im(np.zeros((27, 71), np.float32), 2, 3, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1),
    lambda x: ext.col2im(np.zeros((27, 72), np.float64), 2, 3, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1),
    lambda x: ext.col2im(np.zeros((27, 72), np.float32), 2, 3, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1,
                         out=np.zeros((2, 3, 6, 7), np.float32)),
])
def test_bad_input_raises_value_error(call):
    x = np.zeros((2, 3, 6, 6), np.float32)
    with pytest.raises(ValueError):
        call(x)


def test_out_overlapping_input_is_rejected():
    buf = np.zeros(2 * 3 * 6 * 6 + 27 * 72, np.float32)
    x = buf[:216].reshape(2, 3, 6, 6)
    with pytest.raises(ValueError, match="overlap"):
        ext.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1, out=buf[:27 * 72].reshape(27, 72))


def test_thread_count_does_not_change_results():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    g = (4, 8, 20, 20, 3, 3, 1, 1, 1, 1, 1, 1)     # large enough to go parallel
    x = _x(g)
    col = np.random.default_rng(6).standard_normal(_col_shape(g)).astype(np.float32)
    results = []
    for n in (1, 2):
        with threadpoolctl.threadpool_limits(n, user_api="openmp"):
            results.append((ext.im2col(x, *g[4:]), ext.col2im(col, *g)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_openmp_info_functions():
    assert isinstance(ext.openmp_enabled(), bool)
    n = ext.openmp_max_threads()
    assert isinstance(n, int) and n >= 1
    if not ext.openmp_enabled():
        assert n == 1


def test_dispatcher_uses_compiled_kernels():
    import dtnn._kernels as kernels
    from dtnn._kernels.isa import requested
    if requested() == "numpy":     # DTNN_KERNELS=numpy or DTNN_ISA=numpy
        assert kernels.im2col is twins.im2col
    else:
        assert kernels.active()["im2col"] == "compiled"
        assert kernels.im2col is ext.im2col and kernels.col2im is ext.col2im
    assert kernels.openmp_info()["openmp"] == ext.openmp_enabled()
