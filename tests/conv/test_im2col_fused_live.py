"""Live-tap blocks of the fused convolution kernels (csrc/im2col_fused_live.c).

Blocks of >= 6 small images laid out with the images innermost, where a micro-tile is
one output position in 6 images and the products that read padding are skipped.  They
compute the same functions as the channel-major blocks (the same numpy twins,
dtnn.conv.im2col_fused), so the oracle here is torch autograd in float64 (an
independent implementation), each ISA path that this CPU runs (skipped with the
reason elsewhere), with DTNN_FUSED_LIVE_MIN forcing live-tap blocks on (0) or off
(101).  Errors are normwise.
"""
import numpy as np
import pytest

from dtnn._kernels import isa as isa_mod

torch = pytest.importorskip("torch")

try:
    import dtnn._kernels._im2col as _ext
except ImportError:  # extension not built
    _ext = None


def _why_not(isa):
    if _ext is None:
        return "dtnn._kernels._im2col is not built"
    if isa not in _ext.fused_compiled_paths():
        return f"the fused {isa} path is not compiled into this build"
    if _ext.fused_isa(isa) is None:
        return f"this CPU cannot run the fused {isa} path (its best level: {isa_mod.cpu()})"
    return None


ISAS = [pytest.param(i, id=i, marks=pytest.mark.skipif(_why_not(i) is not None,
                                                     reason=_why_not(i) or "runs"))
        for i in ("avx512", "avx2")]
needs_ext = pytest.mark.skipif(_ext is None, reason="dtnn._kernels._im2col is not built")

# (N, C, H, W, K, R, S, stride, padding, dilation, groups)
CASES = [
    (12, 16, 3, 3, 40, 3, 3, (1, 1), (1, 1), (1, 1), 1),    # vgg 3x3 images, K tail
    (13, 8, 7, 7, 20, 3, 3, (1, 1), (1, 1), (1, 1), 1),     # 7x7, one padding image
    (64, 70, 3, 3, 24, 3, 3, (1, 1), (1, 1), (1, 1), 1),    # C > a chunk (AVX2: 64)
    (12, 8, 5, 6, 16, 3, 3, (2, 1), (1, 1), (1, 1), 1),     # stride 2 (no bwd-data)
    (12, 8, 5, 5, 16, 3, 3, (1, 1), (2, 2), (2, 2), 1),     # dilation 2
    (12, 8, 4, 4, 16, 3, 3, (1, 1), (1, 1), (1, 1), 2),     # groups
    (7, 6, 2, 2, 12, 3, 3, (1, 1), (1, 1), (1, 1), 1),      # 2x2 images
    (12, 8, 3, 3, 16, 5, 5, (1, 1), (2, 2), (1, 1), 1),     # 5x5 on 3x3: 64 % padding
    (12, 8, 1, 1, 16, 3, 3, (1, 1), (1, 1), (1, 1), 1),     # 1x1 images: centre tap only
    (6, 9, 3, 4, 130, 2, 3, (1, 1), (1, 0), (1, 1), 1),     # 3 k-tiles, 2x3 taps
    (8, 5, 4, 3, 7, 3, 3, (3, 3), (2, 2), (1, 1), 1),       # positions with no live tap
]


def _id(c):
    N, C, H, W, K, R, S, st, pad, dil, G = c
    return f"{N}x{C}x{H}x{W}-k{K}-{R}x{S}-s{st[0]}{st[1]}-p{pad[0]}{pad[1]}-d{dil[0]}{dil[1]}-g{G}"


def _data(case, seed=0):
    N, C, H, W, K, R, S, st, pad, dil, G = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C // G, R, S)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.conv2d(xt, wt, torch.tensor(b, dtype=torch.float64), st, pad,
                                   dil, G)
    dy = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return x, w, b, dy, (y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy())


def _err(a, ref):
    return float(np.linalg.norm(np.asarray(a, np.float64) - ref)
                 / max(np.linalg.norm(ref), 1e-30))


def _bwd_data_applies(case):
    N, C, H, W, K, R, S, st, pad, dil, G = case
    return st == (1, 1) and pad[0] <= dil[0] * (R - 1) and pad[1] <= dil[1] * (S - 1)


def _run(case, isa, x, w, b, dy):
    N, C, H, W, K, R, S, st, pad, dil, G = case
    y = _ext.fused_forward(x, w, b, *st, *pad, *dil, G, isa=isa)
    dw = _ext.fused_backward_weights(dy, x, R, S, *st, *pad, *dil, G, isa=isa)
    dx = (_ext.fused_backward_data(dy, w, H, W, *pad, *dil, G, isa=isa)
          if _bwd_data_applies(case) else None)
    return y, dx, dw


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_live_blocks_match_torch_float64(case, isa, monkeypatch):
    monkeypatch.setenv("DTNN_FUSED_LIVE_MIN", "0")
    N, C, H, W, K, R, S, st, pad, dil, G = case
    assert _ext.fused_live(N, C, H, W, K, R, S, *st, *pad, *dil, G, "forward")
    assert _ext.fused_live(N, C, H, W, K, R, S, *st, *pad, *dil, G, "backward_weights")
    x, w, b, dy, (y64, dx64, dw64) = _data(case)
    y, dx, dw = _run(case, isa, x, w, b, dy)
    assert _err(y, y64) < 1e-5
    assert _err(dw, dw64) < 1e-5
    if dx is not None:
        assert _ext.fused_live(N, C, H, W, K, R, S, *st, *pad, *dil, G, "backward_data")
        assert _err(dx, dx64) < 1e-5


@pytest.mark.parametrize("isa", ISAS)
def test_live_and_channel_major_blocks_agree(isa, monkeypatch):
    """Both blockings compute the same sums (in another order): equal to rounding."""
    case = CASES[0]
    x, w, b, dy, _ = _data(case, seed=3)
    res = {}
    for live in ("0", "101"):
        monkeypatch.setenv("DTNN_FUSED_LIVE_MIN", live)
        res[live] = _run(case, isa, x, w, b, dy)
    assert not _ext.fused_live(*case[:7], *case[7], *case[8], *case[9], case[10], "forward")
    for a, c in zip(res["0"], res["101"]):
        assert _err(a, c.astype(np.float64)) < 1e-6


@pytest.mark.parametrize("isa", ISAS)
def test_live_blocks_thread_count_does_not_change_results(isa, monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.setenv("DTNN_FUSED_LIVE_MIN", "0")
    case = (20, 24, 7, 7, 72, 3, 3, (1, 1), (1, 1), (1, 1), 1)
    x, w, b, dy, _ = _data(case, seed=5)
    res = []
    for n in (1, 2):
        with threadpoolctl.threadpool_limits(n, user_api="openmp"):
            res.append(_run(case, isa, x, w, b, dy))
    for a, c in zip(*res):
        np.testing.assert_array_equal(a, c)


@pytest.mark.skipif(_why_not("avx512") is not None or _why_not("avx2") is not None,
                    reason=f"needs both ISA paths: {_why_not('avx512') or _why_not('avx2')}")
def test_live_blocks_isa_paths_agree_bit_for_bit(monkeypatch):
    monkeypatch.setenv("DTNN_FUSED_LIVE_MIN", "0")
    for case in CASES[::2]:
        x, w, b, dy, _ = _data(case, seed=7)
        for a, c in zip(_run(case, "avx512", x, w, b, dy), _run(case, "avx2", x, w, b, dy)):
            if a is not None:
                np.testing.assert_array_equal(a, c)


@needs_ext
def test_live_block_choice(monkeypatch):
    """Default (15 % of products reading padding): vgg11_bn w0.5's 3x3 layers on 7x7 and
    3x3 images run live-tap blocks, 14x14 (9 %) and batch 1 do not; the first layers
    (direct kernels) and 1x1 convolutions never."""
    monkeypatch.delenv("DTNN_FUSED_LIVE_MIN", raising=False)
    one = ((1, 1), (1, 1), (1, 1), 1)
    for C, H, K in ((128, 3, 256), (256, 3, 256), (64, 7, 128), (128, 7, 128)):
        for p in ("forward", "backward_data", "backward_weights"):
            assert _ext.fused_live(64, C, H, H, K, 3, 3, *one[0], *one[1], *one[2], 1, p)
    assert not _ext.fused_live(64, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, "forward")
    assert not _ext.fused_live(1, 256, 3, 3, 256, 3, 3, 1, 1, 1, 1, 1, 1, 1, "forward")
    assert not _ext.fused_live(64, 1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, "forward")
    assert not _ext.fused_live(64, 64, 7, 7, 64, 1, 1, 1, 1, 0, 0, 1, 1, 1,
                               "backward_weights")
    assert not _ext.fused_live(64, 64, 3, 3, 64, 3, 3, 2, 2, 1, 1, 1, 1, 1, "backward_data")
    monkeypatch.setenv("DTNN_FUSED_LIVE_MIN", "101")
    assert not _ext.fused_live(64, 128, 3, 3, 256, 3, 3, 1, 1, 1, 1, 1, 1, 1, "forward")
    monkeypatch.setenv("DTNN_FUSED_LIVE_MIN", "5")
    assert _ext.fused_live(64, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, "forward")
    with pytest.raises(ValueError):
        _ext.fused_live(64, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, "sideways")
