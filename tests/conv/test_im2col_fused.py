"""The fused ("implicit im2col") convolution kernels and the im2col variant that uses them.

Three layers of checks: the numpy twins against a float64 reference (always run); the
compiled kernels against the twins on a seeded sweep of geometries, plus their argument
handling, once per ISA path (AVX-512, AVX2 + FMA; a path this CPU cannot run is skipped
with the reason); and ``Im2ColConv`` with the fused kernels at each ISA level and with
unfold + GEMM against the float64 reference, all three passes.  Errors are normwise,
||ours - ref|| / ||ref||.
"""
import numpy as np
import pytest

from dtnn._kernels import isa as isa_mod
from dtnn._kernels import twins
from dtnn.conv import ConvGeometry
from dtnn.conv import im2col as im2col_mod
from dtnn.conv import im2col_fused as tw
from dtnn.conv.im2col import Im2ColConv

try:
    import dtnn._kernels._im2col as _ext
    HAVE_FUSED = bool(_ext.fused_supported())
except ImportError:  # extension not built
    _ext, HAVE_FUSED = None, False


def _why_not(isa):
    """Why the fused kernels' ``isa`` path cannot be tested here (None: it can)."""
    if _ext is None:
        return "dtnn._kernels._im2col is not built"
    if isa not in _ext.fused_compiled_paths():
        return f"the fused {isa} path is not compiled into this build"
    if _ext.fused_isa(isa) is None:
        return f"this CPU cannot run the fused {isa} path (its best level: {isa_mod.cpu()})"
    return None


#: one parameter per ISA path of the fused kernels, skipped with the reason where the
#: CPU cannot run it (an AVX2-only CI machine skips the AVX-512 ones and says so)
ISAS = [pytest.param(i, id=i, marks=pytest.mark.skipif(_why_not(i) is not None,
                                                     reason=_why_not(i) or "runs"))
        for i in ("avx512", "avx2")]
needs_fused = pytest.mark.skipif(not HAVE_FUSED, reason=_why_not("avx2") or
                                 "the fused kernels are capped off (DTNN_ISA)")


def ref64(x, w, b, dy, stride, padding, dilation, groups):
    """float64 y, dx, dw by explicit sums over taps."""
    x, w, dy = x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64)
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    Ho, Wo = dy.shape[2:]
    G, Kg = groups, K // groups
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp = np.zeros_like(xp)
    y = np.zeros((N, G, Kg, Ho, Wo))
    dwr = np.zeros_like(w)
    dyg = dy.reshape(N, G, Kg, Ho, Wo)
    for r in range(R):
        for s in range(S):
            win = (slice(None), slice(None), slice(r * dh, r * dh + sh * (Ho - 1) + 1, sh),
                   slice(s * dw, s * dw + sw * (Wo - 1) + 1, sw))
            t = xp[win].reshape(N, G, Cg, Ho, Wo)
            wg = w[:, :, r, s].reshape(G, Kg, Cg)
            y += np.einsum("gkc,ngchw->ngkhw", wg, t)
            dwr[:, :, r, s] = np.einsum("ngkhw,ngchw->gkc", dyg, t).reshape(K, Cg)
            dxp[win] += np.einsum("gkc,ngkhw->ngchw", wg, dyg).reshape(N, C, Ho, Wo)
    y = y.reshape(N, K, Ho, Wo)
    if b is not None:
        y += b.reshape(1, K, 1, 1)
    return y, dxp[:, :, ph:ph + H, pw:pw + W], dwr


def err(a, ref):
    ref = np.asarray(ref, np.float64)
    return float(np.linalg.norm(np.asarray(a, np.float64) - ref) / max(np.linalg.norm(ref), 1e-30))


def _data(N, C, H, W, K, R, S, stride, padding, dilation, groups, seed=0, bias=True):
    rng = np.random.default_rng(seed)
    Ho = twins.out_size(H, R, stride[0], padding[0], dilation[0])
    Wo = twins.out_size(W, S, stride[1], padding[1], dilation[1])
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C // groups, R, S)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32) if bias else None
    dy = rng.standard_normal((N, K, Ho, Wo)).astype(np.float32)
    return x, w, b, dy


# (N, C, H, W, K, R, S, stride, padding, dilation, groups)
TWIN_CASES = [
    (2, 3, 7, 6, 5, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    (1, 4, 9, 8, 6, 3, 2, (1, 1), (2, 1), (2, 1), 2),
    (3, 6, 5, 5, 4, 1, 1, (1, 1), (0, 0), (1, 1), 1),
    (2, 4, 10, 9, 8, 3, 3, (2, 1), (1, 0), (1, 2), 2),
]


@pytest.mark.parametrize("case", TWIN_CASES, ids=[f"t{i}" for i in range(len(TWIN_CASES))])
def test_twins_match_float64_reference(case):
    N, C, H, W, K, R, S, st, pad, dil, G = case
    x, w, b, dy = _data(*case)
    y, dx, dw = ref64(x, w, b, dy, st, pad, dil, G)
    assert err(tw.fused_forward(x, w, b, *st, *pad, *dil, G), y) < 1e-6
    assert err(tw.fused_backward_weights(dy, x, R, S, *st, *pad, *dil, G), dw) < 1e-6
    if st == (1, 1) and pad[0] <= dil[0] * (R - 1) and pad[1] <= dil[1] * (S - 1):
        assert err(tw.fused_backward_data(dy, w, H, W, *pad, *dil, G), dx) < 1e-6


def _sweep():
    """Seeded random geometries: small and many-channel, every stride/pad/dilation mix,
    groups, batch 1, channel counts around the 16-lane vectors and 64-channel tiles."""
    rng = np.random.default_rng(2024)
    cases = [
        (64, 5, 4, 4, 40, 3, 3, (1, 1), (1, 1), (1, 1), 1),    # many tiny images, 4x4
        (2, 24, 40, 37, 80, 3, 3, (1, 1), (1, 1), (1, 1), 1),  # blocks split by rows
        (3, 16, 12, 12, 130, 3, 3, (1, 1), (1, 1), (1, 1), 1),  # 3 k-tiles, tail of 2
        (1, 70, 6, 6, 17, 3, 3, (1, 1), (1, 1), (1, 1), 1),    # reduction > one chunk
        (2, 12, 9, 9, 48, 3, 3, (1, 1), (1, 1), (1, 1), 3),    # groups
        (2, 8, 11, 11, 16, 5, 5, (2, 2), (2, 2), (1, 1), 1),   # stride 2
        (1, 3, 1, 1, 9, 3, 3, (1, 1), (1, 1), (1, 1), 1),      # 1x1 image
        (2, 20, 7, 7, 24, 1, 1, (1, 1), (0, 0), (1, 1), 4),    # grouped pointwise
    ]
    while len(cases) < 60:
        G = int(rng.choice([1, 1, 1, 2, 3]))
        Cg, Kg = int(rng.integers(1, 24)), int(rng.integers(1, 72))
        N = int(rng.integers(1, 5)) if len(cases) % 4 else int(rng.integers(20, 70))
        H, W = int(rng.integers(1, 15)), int(rng.integers(1, 15))
        R, S = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        st = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        pad = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        if twins.out_size(H, R, st[0], pad[0], dil[0]) < 1 or \
                twins.out_size(W, S, st[1], pad[1], dil[1]) < 1:
            continue
        cases.append((N, Cg * G, H, W, Kg * G, R, S, st, pad, dil, G))
    return cases


SWEEP = _sweep()

#: first layers (short reductions, stride_w 1: the direct kernels) and shapes around
#: their tiles: rows of 16-pixel vectors full (32), with tails (28, 26, 24, 15, 13),
#: over several vectors (40); K around the 6-channel forward and 2/4-channel
#: backward-weights tiles; J = 7..27 around the 3/6-row tiles; stride_h 2, dilation,
#: groups, batch 1 (the forward then splits output channels over threads)
FIRST_LAYER_CASES = [
    (4, 3, 32, 32, 64, 3, 3, (1, 1), (1, 1), (1, 1), 1),   # vgg 3->64
    (5, 1, 28, 28, 32, 3, 3, (1, 1), (1, 1), (1, 1), 1),   # simplecnn 1->32
    (3, 1, 28, 28, 32, 5, 5, (1, 1), (0, 0), (1, 1), 1),   # lenet 5x5: 24 columns
    (2, 1, 28, 28, 13, 5, 5, (1, 1), (2, 2), (1, 1), 1),   # odd K
    (3, 3, 17, 15, 7, 3, 3, (2, 1), (1, 1), (1, 1), 1),    # stride_h 2
    (2, 2, 16, 14, 10, 3, 3, (1, 1), (2, 2), (2, 2), 1),   # dilation 2
    (2, 4, 12, 13, 12, 3, 3, (1, 1), (1, 1), (1, 1), 2),   # groups, 13 columns
    (1, 1, 30, 40, 24, 1, 7, (1, 1), (0, 3), (1, 1), 1),   # batch 1, 1x7, 40 columns
    (3, 2, 6, 27, 9, 2, 2, (1, 1), (0, 0), (1, 1), 1),     # 26 columns, J = 8
]


def _id(c):
    N, C, H, W, K, R, S, st, pad, dil, G = c
    return f"{N}x{C}x{H}x{W}-k{K}-{R}x{S}-s{st[0]}{st[1]}-p{pad[0]}{pad[1]}-d{dil[0]}{dil[1]}-g{G}"


def _compiled(case, isa):
    """y, dw, dx (None unless backward-data applies) of the compiled kernels' ``isa`` path."""
    N, C, H, W, K, R, S, st, pad, dil, G = case
    x, w, b, dy = _data(*case, seed=len(_id(case)), bias=N % 2 == 0)
    y = _ext.fused_forward(x, w, b, *st, *pad, *dil, G, isa=isa)
    dw = _ext.fused_backward_weights(dy, x, R, S, *st, *pad, *dil, G, isa=isa)
    dx = None
    if st == (1, 1) and pad[0] <= dil[0] * (R - 1) and pad[1] <= dil[1] * (S - 1):
        dx = _ext.fused_backward_data(dy, w, H, W, *pad, *dil, G, isa=isa)
    return y, dw, dx


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", SWEEP, ids=[_id(c) for c in SWEEP])
def test_compiled_matches_twins(case, isa):
    N, C, H, W, K, R, S, st, pad, dil, G = case
    x, w, b, dy = _data(*case, seed=len(_id(case)), bias=N % 2 == 0)
    y, dw, dx = _compiled(case, isa)
    assert err(y, tw.fused_forward(x, w, b, *st, *pad, *dil, G)) < 1e-5
    assert err(dw, tw.fused_backward_weights(dy, x, R, S, *st, *pad, *dil, G)) < 1e-5
    if dx is not None:
        assert err(dx, tw.fused_backward_data(dy, w, H, W, *pad, *dil, G)) < 1e-5


@pytest.mark.skipif(_why_not("avx512") is not None or _why_not("avx2") is not None,
                    reason=f"needs both ISA paths: {_why_not('avx512') or _why_not('avx2')}")
def test_isa_paths_agree_bit_for_bit():
    """The AVX2 tiles sum in the AVX-512 tiles' order, one FMA per term, so the two
    paths give identical floats: a layer's result does not depend on the node's CPU."""
    for case in SWEEP[::3] + FIRST_LAYER_CASES:
        for a, b_ in zip(_compiled(case, "avx512"), _compiled(case, "avx2")):
            if a is not None:
                np.testing.assert_array_equal(a, b_)


def test_isa_argument_is_checked():
    if _ext is None:
        pytest.skip("dtnn._kernels._im2col is not built")
    x = np.zeros((1, 2, 4, 4), np.float32)
    w = np.zeros((3, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="isa must be"):
        _ext.fused_forward(x, w, None, 1, 1, 1, 1, 1, 1, 1, isa="sse9")
    for isa in ("avx512", "avx2"):
        if _ext.fused_isa(isa) is None:       # a path this CPU cannot run: a clear error
            with pytest.raises(RuntimeError, match=isa):
                _ext.fused_forward(x, w, None, 1, 1, 1, 1, 1, 1, 1, isa=isa)


@pytest.mark.parametrize("isa", ISAS)
def test_out_and_workspace_arguments(isa):
    case = (3, 16, 8, 8, 20, 3, 3, (1, 1), (1, 1), (1, 1), 1)
    x, w, b, dy = _data(*case)
    asked = []

    def workspace(n):
        asked.append(n)
        return np.full(n + 5, np.nan, np.float32)   # stale contents must not matter

    y_out = np.full((3, 20, 8, 8), np.nan, np.float32)
    y = _ext.fused_forward(x, w, b, 1, 1, 1, 1, 1, 1, 1, out=y_out, workspace=workspace,
                           isa=isa)
    assert y is y_out and asked
    np.testing.assert_allclose(y, tw.fused_forward(x, w, b, 1, 1, 1, 1, 1, 1, 1),
                               rtol=1e-5, atol=1e-5)
    dw_out = np.full(w.shape, np.nan, np.float32)      # overwritten, not accumulated
    dw = _ext.fused_backward_weights(dy, x, 3, 3, 1, 1, 1, 1, 1, 1, 1, out=dw_out,
                                     workspace=workspace, isa=isa)
    assert dw is dw_out
    np.testing.assert_allclose(dw, tw.fused_backward_weights(dy, x, 3, 3, 1, 1, 1, 1, 1, 1, 1),
                               rtol=1e-4, atol=1e-4)
    dx_out = np.full(x.shape, np.nan, np.float32)
    dx = _ext.fused_backward_data(dy, w, 8, 8, 1, 1, 1, 1, 1, out=dx_out, isa=isa,
                                  workspace=lambda n: np.empty(1, np.float32))  # too small
    assert dx is dx_out
    np.testing.assert_allclose(dx, tw.fused_backward_data(dy, w, 8, 8, 1, 1, 1, 1, 1),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("isa", ISAS)
def test_non_contiguous_inputs_and_empty_batch(isa):
    rng = np.random.default_rng(3)
    big = rng.standard_normal((2, 32, 6, 6)).astype(np.float32)
    x = big[:, ::2]
    w = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)[:, :, ::-1]
    assert not x.flags.c_contiguous and not w.flags.c_contiguous
    np.testing.assert_allclose(_ext.fused_forward(x, w, None, 1, 1, 1, 1, 1, 1, 1, isa=isa),
                               tw.fused_forward(x, w, None, 1, 1, 1, 1, 1, 1, 1),
                               rtol=1e-5, atol=1e-5)
    x0 = np.zeros((0, 16, 6, 6), np.float32)
    assert _ext.fused_forward(x0, w, None, 1, 1, 1, 1, 1, 1, 1, isa=isa).shape == (0, 24, 6, 6)
    dw = _ext.fused_backward_weights(np.zeros((0, 24, 6, 6), np.float32), x0, 3, 3,
                                     1, 1, 1, 1, 1, 1, 1, isa=isa)
    np.testing.assert_array_equal(dw, np.zeros((24, 16, 3, 3), np.float32))


@needs_fused
@pytest.mark.parametrize("call", [
    lambda x, w, dy: _ext.fused_forward(x.astype(np.float64), w, None, 1, 1, 1, 1, 1, 1, 1),
    lambda x, w, dy: _ext.fused_forward(x, w, None, 1, 1, 1, 1, 1, 1, 3),        # groups
    lambda x, w, dy: _ext.fused_forward(x, w[:, :4], None, 1, 1, 1, 1, 1, 1, 1),  # w shape
    lambda x, w, dy: _ext.fused_forward(x, w, np.zeros(3, np.float32), 1, 1, 1, 1, 1, 1, 1),
    lambda x, w, dy: _ext.fused_forward(x, w, None, 0, 1, 1, 1, 1, 1, 1),        # stride 0
    lambda x, w, dy: _ext.fused_forward(x[:, :, :1, :1], w, None, 1, 1, 0, 0, 1, 1, 1),
    lambda x, w, dy: _ext.fused_forward(x, w, None, 1, 1, 1, 1, 1, 1, 1,
                                        out=np.empty((2, 8, 6, 5), np.float32)),
    lambda x, w, dy: _ext.fused_backward_data(dy, w, 6, 6, 3, 1, 1, 1, 1),   # pad > dil*(R-1)
    lambda x, w, dy: _ext.fused_backward_data(dy, w, 7, 6, 1, 1, 1, 1, 1),   # H mismatch
    lambda x, w, dy: _ext.fused_backward_weights(dy[:, :, :5], x, 3, 3, 1, 1, 1, 1, 1, 1, 1),
    lambda x, w, dy: _ext.fused_backward_weights(dy, x, 3, 3, 1, 1, 1, 1, 1, 1, 1,
                                                 out=np.empty((8, 6, 3, 3), np.float64)),
])
def test_bad_arguments_raise_value_error(call):
    x = np.zeros((2, 6, 6, 6), np.float32)
    w = np.zeros((8, 6, 3, 3), np.float32)
    dy = np.zeros((2, 8, 6, 6), np.float32)
    with pytest.raises(ValueError):
        call(x, w, dy)


@pytest.mark.parametrize("isa", ISAS)
def test_thread_count_does_not_change_results(isa):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    case = (6, 24, 12, 12, 40, 3, 3, (1, 1), (1, 1), (1, 1), 1)
    x, w, b, dy = _data(*case)
    res = []
    for n in (1, 2):
        with threadpoolctl.threadpool_limits(n, user_api="openmp"):
            res.append((_ext.fused_forward(x, w, b, 1, 1, 1, 1, 1, 1, 1, isa=isa),
                        _ext.fused_backward_data(dy, w, 12, 12, 1, 1, 1, 1, 1, isa=isa),
                        _ext.fused_backward_weights(dy, x, 3, 3, 1, 1, 1, 1, 1, 1, 1, isa=isa)))
    for a, b_ in zip(*res):
        np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("isa", ISAS)
def test_few_tile_layers_split_the_batch_over_threads(isa):
    """First layers have too few (k-tile, row-tile) tasks to share out, so at several
    threads backward-weights splits the batch (one part per thread, their dW summed):
    it matches the twin, the batch is covered (odd N), and a thread count always gives
    the same floats."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    for case in [(8, 3, 16, 16, 64, 3, 3, (1, 1), (1, 1), (1, 1), 1),
                 (9, 1, 14, 14, 32, 5, 5, (1, 1), (0, 0), (1, 1), 1),
                 (7, 2, 12, 12, 16, 3, 3, (2, 2), (1, 1), (1, 1), 2)]:
        N, C, H, W, K, R, S, st, pad, dil, G = case
        x, w, b, dy = _data(*case)
        ref = tw.fused_backward_weights(dy, x, R, S, *st, *pad, *dil, G)
        for n in (1, 2):
            with threadpoolctl.threadpool_limits(n, user_api="openmp"):
                one, two = (_ext.fused_backward_weights(dy, x, R, S, *st, *pad, *dil, G,
                                                        isa=isa) for _ in range(2))
            np.testing.assert_array_equal(one, two)
            assert err(one, ref) < 1e-5, (case, n)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", FIRST_LAYER_CASES, ids=[_id(c) for c in FIRST_LAYER_CASES])
def test_first_layers_run_the_direct_kernels(case, isa):
    """Short reductions (first layers) run the direct kernels: forward (with and without
    bias) and backward-weights match the twins and the float64 sums, and give the same
    floats at 1 and 2 threads (split by image or output channel, never inside a sum)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    N, C, H, W, K, R, S, st, pad, dil, G = case
    assert _ext.fused_direct(C, R, S, G, st[1], twins.out_size(W, S, st[1], pad[1], dil[1]))
    x, w, b, dy = _data(*case, seed=N + K)
    y64, _, dw64 = ref64(x, w, b, dy, st, pad, dil, G)
    outs = []
    for n in (1, 2):
        with threadpoolctl.threadpool_limits(n, user_api="openmp"):
            outs.append((_ext.fused_forward(x, w, b, *st, *pad, *dil, G, isa=isa),
                         _ext.fused_forward(x, w, None, *st, *pad, *dil, G, isa=isa),
                         _ext.fused_backward_weights(dy, x, R, S, *st, *pad, *dil, G,
                                                     isa=isa)))
    y, y0, dw = outs[0]
    assert err(y, y64) < 1e-5 and err(dw, dw64) < 1e-5
    assert err(y, tw.fused_forward(x, w, b, *st, *pad, *dil, G)) < 1e-5
    assert err(y0, tw.fused_forward(x, w, None, *st, *pad, *dil, G)) < 1e-5
    assert err(dw, tw.fused_backward_weights(dy, x, R, S, *st, *pad, *dil, G)) < 1e-5
    for a, b_ in zip(*outs):
        np.testing.assert_array_equal(a, b_)


def test_direct_path_choice():
    """The direct kernels take stride_w 1, (C/groups)*R*S <= 32 and rows filling 3/4 of
    their 16-pixel vectors; everything else runs the tiled kernels."""
    if _ext is None:
        pytest.skip("dtnn._kernels._im2col is not built")
    assert _ext.fused_direct(3, 3, 3, 1, 1, 32) and _ext.fused_direct(1, 5, 5, 1, 1, 24)
    assert _ext.fused_direct(32, 1, 1, 1, 1, 16) and _ext.fused_direct(6, 3, 3, 2, 1, 12)
    assert not _ext.fused_direct(3, 3, 3, 1, 2, 32)      # stride_w 2
    assert not _ext.fused_direct(4, 3, 3, 1, 1, 32)      # J = 36
    assert not _ext.fused_direct(3, 3, 3, 1, 1, 11)      # 11 of 16 lanes


def test_few_output_channels_take_the_direct_path_and_match_torch():
    """Below fused_min_channels output channels the tiled kernels waste their channel
    lanes, so such layers unfold + GEMM; the direct path's lanes are output pixels, so
    a first layer with few filters (lenet: 1->6 5x5) runs it, forward and dW."""
    torch = pytest.importorskip("torch")
    conv = Im2ColConv()
    g = ConvGeometry(N=4, C=1, H=28, W=28, K=6, R=5, S=5, padding=(2, 2))
    tiled = ConvGeometry(N=4, C=3, H=17, W=17, K=6, R=3, S=5, padding=(1, 1))  # J = 45
    if not im2col_mod.fused_available():
        assert not conv.fused_forward_ok(g) and not conv.fused_weights_ok(g)
        return
    assert conv.fused_forward_ok(g) and conv.fused_weights_ok(g)
    assert not conv.fused_data_ok(g)                  # C = 1 input channel: unfold path
    assert not conv.fused_forward_ok(tiled) and not conv.fused_weights_ok(tiled)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 1, 28, 28)).astype(np.float32)
    w = rng.standard_normal((6, 1, 5, 5)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    dy = rng.standard_normal((4, 6, 28, 28)).astype(np.float32)
    y = conv.forward(x, w, b, g)
    dw, db = np.empty_like(w), np.empty_like(b)
    conv.backward(dy, x, w, g, False, dw, db)
    xt, wt = torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64,
                                                               requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, torch.tensor(b, dtype=torch.float64), padding=2)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(db, dy.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-4)


def test_fused_available_matches_dispatch():
    if isa_mod.requested() == "numpy" or _ext is None:
        assert not im2col_mod.fused_available() and im2col_mod.fused_isa() is None
        assert im2col_mod.fused_forward is tw.fused_forward
        return
    assert im2col_mod.fused_available() == HAVE_FUSED
    assert im2col_mod.fused_forward is _ext.fused_forward
    best = isa_mod.runnable(_ext.fused_compiled_paths(), isa_mod.active())
    assert im2col_mod.fused_isa() == (best[0] if best else None)
    # DTNN_ISA's levels, set at run time: generic turns the fused kernels off
    with isa_mod.capped("generic"):
        assert not im2col_mod.fused_available() and im2col_mod.fused_isa() is None
        assert not Im2ColConv().fused_forward_ok(G_(8, 64, 16, 16, 64, 3, 3, (1, 1), (1, 1)))
    if _why_not("avx2") is None:
        with isa_mod.capped("avx2"):
            assert im2col_mod.fused_isa() == "avx2" and isa_mod.active() == "avx2"
    assert im2col_mod.fused_available() == HAVE_FUSED


# --- the im2col variant -------------------------------------------------------------
G_ = ConvGeometry
ALGO_CASES = [
    G_(2, 16, 9, 9, 24, 3, 3, (1, 1), (1, 1)),                  # all three passes fused
    G_(1, 20, 8, 7, 40, 3, 3, (1, 1), (1, 1), (1, 1), 2),       # batch 1, groups
    G_(3, 16, 11, 10, 32, 3, 3, (2, 2), (1, 1)),                # stride 2: dx unfold/GEMM
    G_(2, 16, 12, 12, 16, 5, 5, (1, 1), (0, 0)),                # valid 5x5: dx unfold/GEMM
    G_(2, 16, 10, 10, 16, 3, 3, (1, 1), (2, 2), (2, 2)),        # dilation
    G_(2, 32, 6, 6, 64, 1, 1),                                  # 1x1: forward by matmul
    G_(2, 12, 7, 7, 12, 3, 3, (1, 1), (1, 1), (1, 1), 12),      # depthwise: unfold/GEMM
    G_(2, 3, 10, 10, 16, 3, 3, (1, 1), (1, 1)),                 # first layer, C=3
]


@pytest.mark.parametrize("mode", ISAS + ["gemm"])
@pytest.mark.parametrize("g", ALGO_CASES, ids=[g.tag().replace(" ", "_") for g in ALGO_CASES])
def test_im2col_variant_matches_reference(g, mode):
    with isa_mod.capped(mode if mode != "gemm" else "avx512"):
        _variant_matches_reference(g, fused=mode != "gemm")


def _variant_matches_reference(g, fused):
    x, w, b, dy = _data(g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.stride, g.padding, g.dilation,
                        g.groups, seed=7)
    y_ref, dx_ref, dw_ref = ref64(x, w, b, dy, g.stride, g.padding, g.dilation, g.groups)
    algo = Im2ColConv(fused=fused)
    algo.fused_min_pixels = 1          # these batches are small: fuse them anyway
    y = algo.forward(x, w, b, g)
    assert y.shape == y_ref.shape and y.dtype == np.float32 and y.flags.c_contiguous
    assert err(y, y_ref) < 1e-6
    dw = np.full(w.shape, np.nan, np.float32)
    db = np.full(b.shape, np.nan, np.float32)
    dx = algo.backward(dy, x, w, g, True, dw, db)
    assert err(dx, dx_ref) < 1e-6
    assert err(dw, dw_ref) < 1e-6
    assert err(db, dy.astype(np.float64).sum(axis=(0, 2, 3))) < 1e-6
    dw2 = np.full(w.shape, np.nan, np.float32)
    assert algo.backward(dy, x, w, g, False, dw2, None) is None
    assert err(dw2, dw_ref) < 1e-6
    # a gradient buffer that is not contiguous is filled too
    dw3 = np.full((w.shape[0], w.shape[1], g.R, 2 * g.S), np.nan, np.float32)[..., ::2]
    algo.backward(dy, x, w, g, False, dw3, None)
    assert err(dw3, dw_ref) < 1e-6


def test_which_passes_run_fused():
    algo = Im2ColConv()
    on = im2col_mod.fused_available()
    same = G_(8, 64, 16, 16, 64, 3, 3, (1, 1), (1, 1))
    assert (algo.fused_forward_ok(same), algo.fused_data_ok(same),
            algo.fused_weights_ok(same)) == (on, on, on)
    s2 = G_(8, 64, 16, 16, 64, 3, 3, (2, 2), (1, 1))
    assert not algo.fused_data_ok(s2) and algo.fused_forward_ok(s2) == on
    s2_1x1 = G_(8, 64, 16, 16, 64, 1, 1, (2, 2))
    assert not (algo.fused_forward_ok(s2_1x1) or algo.fused_weights_ok(s2_1x1)
                or algo.fused_data_ok(s2_1x1))
    pointwise = G_(8, 64, 16, 16, 64, 1, 1)
    assert not algo.fused_forward_ok(pointwise) and algo.fused_weights_ok(pointwise) == on
    assert not algo.fused_data_ok(pointwise)     # dx = W^T dy per image (faster)
    assert not algo.fused_data_ok(G_(8, 64, 12, 12, 64, 5, 5))      # 'valid': dy padded 2.25x
    assert not algo.fused_forward_ok(G_(8, 64, 8, 8, 64, 3, 3, (1, 1), (1, 1), (1, 1), 64))
    tiny = G_(1, 256, 4, 4, 512, 3, 3, (1, 1), (1, 1))           # 16 output pixels
    assert not (algo.fused_forward_ok(tiny) or algo.fused_weights_ok(tiny))
    assert algo.fused_forward_ok(tiny.with_batch(8)) == on
    off = Im2ColConv(fused=False)
    assert not (off.fused_forward_ok(same) or off.fused_data_ok(same)
                or off.fused_weights_ok(same))


# --- pointwise backward-weights ---------------------------------------------------------
# 1x1 convolutions with stride 1, no padding and images of at least 256 pixels
# (csrc/im2col_fused.c bww_pointwise, the ISA files' pw_bw tiles) read dy and x in place
# and sum the bias gradient in the same sweep: against float64 sums and the twin on both
# ISA paths, the same floats at 1 and 2 threads (threads split output channels, never a
# sum), the ISA paths against each other; the layer against torch
# autograd in float64.

# (N, C, H, W, K, groups): what each exercises
PW_CASES = [
    (3, 64, 16, 16, 128, 1),    # 256 pixels: a block of several images
    (2, 7, 17, 17, 13, 1),      # 289 pixels (a masked last vector), odd K and C
    (2, 40, 16, 20, 20, 4),     # groups
    (2, 600, 16, 17, 11, 1),    # 600 channels: the image is cut into pixel chunks
    (1, 5, 32, 32, 6, 1),       # batch 1, fewer channels than one tile
]


def _pw_data(N, C, H, W, K, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    dy = rng.standard_normal((N, K, H, W)).astype(np.float32)
    return x, dy


def _pw_ref64(x, dy, G):
    N, C = x.shape[:2]
    K = dy.shape[1]
    xg = x.astype(np.float64).reshape(N, G, C // G, -1)
    dyg = dy.astype(np.float64).reshape(N, G, K // G, -1)
    dw = np.einsum("ngkp,ngcp->gkc", dyg, xg).reshape(K, C // G, 1, 1)
    return dw, dy.astype(np.float64).sum(axis=(0, 2, 3))


def _pw_run(x, dy, G, isa, threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    db = np.full(dy.shape[1], np.nan, np.float32)
    with threadpoolctl.threadpool_limits(threads, user_api="openmp"):
        dw = _ext.fused_backward_weights(dy, x, 1, 1, 1, 1, 0, 0, 1, 1, G, isa=isa, db=db)
    return dw, db


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", PW_CASES, ids=[f"p{i}" for i in range(len(PW_CASES))])
def test_pointwise_matches_float64_twin_and_thread_counts(case, isa):
    N, C, H, W, K, G = case
    assert _ext.fused_pointwise(1, 1, 1, 1, 0, 0, H, W)
    x, dy = _pw_data(N, C, H, W, K, seed=C + K)
    dw64, db64 = _pw_ref64(x, dy, G)
    (dw, db), (dw2, db2) = (_pw_run(x, dy, G, isa, t) for t in (1, 2))
    assert dw.shape == (K, C // G, 1, 1) and dw.dtype == np.float32
    assert err(dw, dw64) < 1e-6 and err(db, db64) < 1e-6
    twin_db = np.empty(K, np.float32)
    twin_dw = tw.fused_backward_weights(dy, x, 1, 1, 1, 1, 0, 0, 1, 1, G, db=twin_db)
    assert err(dw, twin_dw) < 1e-5 and err(db, twin_db) < 1e-5
    np.testing.assert_array_equal(dw, dw2)
    np.testing.assert_array_equal(db, db2)
    # without db: the same dW
    np.testing.assert_array_equal(
        _ext.fused_backward_weights(dy, x, 1, 1, 1, 1, 0, 0, 1, 1, G, isa=isa), dw)


@pytest.mark.skipif(_why_not("avx512") is not None or _why_not("avx2") is not None,
                    reason=f"needs both ISA paths: {_why_not('avx512') or _why_not('avx2')}")
def test_pointwise_isa_paths_agree():
    """dW: 8 pixel lanes on AVX2, 16 on AVX-512 (rounding differs); db: the same floats."""
    for N, C, H, W, K, G in PW_CASES:
        x, dy = _pw_data(N, C, H, W, K, seed=1)
        a, b = _pw_run(x, dy, G, "avx512", 1), _pw_run(x, dy, G, "avx2", 2)
        assert err(b[0], a[0]) < 1e-6
        np.testing.assert_array_equal(a[1], b[1])


def test_pointwise_choice_matches_the_twin():
    if _ext is None:
        pytest.skip("dtnn._kernels._im2col is not built")
    for args in [(1, 1, 1, 1, 0, 0, 16, 16), (1, 1, 1, 1, 0, 0, 15, 17),
                 (1, 1, 1, 1, 0, 0, 14, 14), (1, 1, 2, 2, 0, 0, 32, 32),
                 (1, 1, 1, 1, 1, 1, 32, 32), (3, 3, 1, 1, 0, 0, 32, 32),
                 (1, 1, 1, 1, 0, 0, 7, 7), (1, 1, 1, 1, 0, 0, 64, 4)]:
        assert _ext.fused_pointwise(*args) == tw.fused_pointwise(*args), args
    assert _ext.fused_pointwise(1, 1, 1, 1, 0, 0, 16, 16)
    assert not _ext.fused_pointwise(1, 1, 1, 1, 0, 0, 14, 14)   # tiled kernel: faster


@pytest.mark.parametrize("isa", ISAS)
def test_db_is_checked(isa):
    x, dy = _pw_data(2, 8, 16, 16, 8)
    good = np.empty(8, np.float32)
    with pytest.raises(ValueError, match="pointwise"):     # a 3x3: db is not summed
        _ext.fused_backward_weights(dy, x, 3, 3, 1, 1, 1, 1, 1, 1, 1, isa=isa, db=good)
    for bad in (np.empty(7, np.float32), np.empty(8, np.float64), np.empty(16, np.float32)[::2]):
        with pytest.raises(ValueError, match="db"):
            _ext.fused_backward_weights(dy, x, 1, 1, 1, 1, 0, 0, 1, 1, 1, isa=isa, db=bad)
    with pytest.raises(ValueError, match="pointwise"):
        tw.fused_backward_weights(dy, x, 3, 3, 1, 1, 1, 1, 1, 1, 1, db=good)
    # an empty batch: zero gradients
    db = np.full(8, np.nan, np.float32)
    dw = _ext.fused_backward_weights(dy[:0], x[:0], 1, 1, 1, 1, 0, 0, 1, 1, 1, isa=isa, db=db)
    assert not dw.any() and not db.any()


@pytest.mark.parametrize("isa", ISAS)
def test_layer_backward_matches_torch_autograd(isa):
    """Im2ColConv's backward of a 1x1 layer (dW and db from the pointwise kernel, dx by
    matmul) against torch autograd in float64."""
    torch = pytest.importorskip("torch")
    N, C, H, W, K = 3, 24, 16, 18, 40
    g = ConvGeometry(N, C, H, W, K, 1, 1, (1, 1), (0, 0))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C, 1, 1)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    dy = rng.standard_normal((N, K, H, W)).astype(np.float32)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.conv2d(xt, wt, bt).backward(torch.tensor(dy, dtype=torch.float64))
    with isa_mod.capped(isa):
        algo = Im2ColConv()
        algo.fused_min_pixels = 1
        assert algo.fused_weights_ok(g) == im2col_mod.fused_available()
        dw = np.full(w.shape, np.nan, np.float32)
        db = np.full(K, np.nan, np.float32)
        dx = algo.backward(dy, x, w, g, True, dw, db)
        dw2 = np.full(w.shape, np.nan, np.float32)
        db2 = np.full(K, np.nan, np.float32)
        assert algo.backward(dy, x, w, g, False, dw2, db2) is None
    assert err(dw, wt.grad.numpy()) < 1e-6 and err(db, bt.grad.numpy()) < 1e-6
    assert err(dx, xt.grad.numpy()) < 1e-6
    np.testing.assert_array_equal(dw, dw2)
    np.testing.assert_array_equal(db, db2)
