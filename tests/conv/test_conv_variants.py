"""Every convolution variant against a float64 reference, all three passes.

Errors are normwise: ||ours - ref|| / ||ref||.  fp32 direct/im2col/implicit/torch and
Winograd F(2x2) stay near 1e-7..1e-6; Winograd F(4x4) is ~10-20x less accurate (larger
transform coefficients), so it gets a looser bound.
"""
import numpy as np
import pytest

from dtnn.conv import CONV_ALGORITHMS, ConvGeometry
from dtnn.conv import kernels as K_

G_ = ConvGeometry
SHAPES = [
    G_(2, 5, 9, 7, 6, 3, 3, (1, 1), (1, 1)),          # odd sizes, same padding
    G_(1, 8, 16, 16, 8, 3, 3, (1, 1), (0, 0)),        # batch 1, valid
    G_(3, 4, 6, 6, 5, 3, 3, (1, 1), (2, 2)),          # padding 2
    G_(2, 3, 5, 11, 4, 3, 3, (1, 1), (1, 0)),         # asymmetric padding
    G_(2, 6, 11, 10, 4, 3, 3, (2, 2), (1, 1)),        # stride 2
    G_(2, 4, 12, 12, 6, 3, 3, (1, 1), (2, 2), (2, 2)),  # dilation 2
    G_(2, 4, 8, 8, 6, 3, 3, (1, 1), (1, 1), (1, 1), 2),  # groups
    G_(2, 3, 8, 9, 5, 1, 1),                          # 1x1
    G_(2, 8, 8, 8, 4, 1, 1, (2, 2)),                  # 1x1 stride 2
    G_(2, 1, 10, 10, 4, 5, 5),                        # LeNet-like first layer
    G_(1, 3, 4, 4, 2, 3, 3, (1, 1), (1, 1)),          # tiny image, one tile
    G_(2, 2, 7, 6, 3, 2, 3, (1, 2), (1, 1)),          # non-square kernel, mixed stride
    G_(5, 6, 1, 1, 7, 3, 3, (1, 1), (1, 1)),          # 3x3 on 1x1 images: 8 dead taps
    G_(3, 4, 1, 2, 5, 3, 3, (1, 1), (1, 1)),          # 1x2 images: dead rows only
    G_(2, 4, 1, 1, 6, 5, 5, (1, 1), (2, 2), (1, 1), 2),  # 5x5 on 1x1, groups
]
VARIANTS = ["im2col", "im2col1", "winograd", "winograd2", "winograd4", "implicit", "direct", "torch",
            "bestof", "livetaps", "tapgemm"]
TOL = {"winograd4": 2e-5}


def conv64(x, w, b, g):
    """float64 reference: forward and the two gradients via explicit tap sums."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    (sh, sw), (ph, pw), (dh, dw) = g.stride, g.padding, g.dilation
    Ho, Wo = g.out_hw
    G, Kg = g.groups, K // g.groups
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    taps = {}
    y = np.zeros((N, G, Kg, Ho, Wo))
    for r in range(R):
        for s in range(S):
            t = xp[:, :, r * dh:r * dh + sh * (Ho - 1) + 1:sh,
                   s * dw:s * dw + sw * (Wo - 1) + 1:sw].reshape(N, G, Cg, Ho, Wo)
            taps[r, s] = t
            y += np.einsum("gkc,ngchw->ngkhw", w[:, :, r, s].reshape(G, Kg, Cg), t)
    y = y.reshape(N, K, Ho, Wo) + b.reshape(1, K, 1, 1)

    def grads(dy):
        dy = dy.astype(np.float64).reshape(N, G, Kg, Ho, Wo)
        dw_ = np.zeros_like(w)
        dxp = np.zeros_like(xp)
        for (r, s), t in taps.items():
            dw_[:, :, r, s] = np.einsum("ngkhw,ngchw->gkc", dy, t).reshape(K, Cg)
            c = np.einsum("gkc,ngkhw->ngchw", w[:, :, r, s].reshape(G, Kg, Cg), dy)
            dxp[:, :, r * dh:r * dh + sh * (Ho - 1) + 1:sh,
                s * dw:s * dw + sw * (Wo - 1) + 1:sw] += c.reshape(N, C, Ho, Wo)
        return dxp[:, :, ph:ph + H, pw:pw + W], dw_, dy.sum(axis=(0, 3, 4)).reshape(K)
    return y, grads


def err(a, ref):
    return float(np.linalg.norm(a.astype(np.float64) - ref) / max(np.linalg.norm(ref), 1e-30))


@pytest.fixture(autouse=True)
def _isolated_tuning(tmp_path, monkeypatch):
    import dtnn.tune
    monkeypatch.setenv("DTNN_TUNE_CACHE", str(tmp_path / "tune"))
    dtnn.tune.configure(dtnn.tune.TuneOptions(rounds=1, warmup=0))
    yield
    dtnn.tune.configure()


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_matches_float64_reference(name):
    if name == "torch":
        pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    tol = TOL.get(name, 2e-6)
    checked = 0
    for g in SHAPES:
        alg = CONV_ALGORITHMS.get(name)()
        if not alg.supports(g):
            continue
        x = rng.standard_normal((g.N, g.C, g.H, g.W)).astype(np.float32)
        w = rng.standard_normal((g.K, g.C // g.groups, g.R, g.S)).astype(np.float32)
        b = rng.standard_normal(g.K).astype(np.float32)
        yr, grads = conv64(x, w, b, g)
        # several calls: the tuned variants switch alternatives while tuning
        for _ in range(3):
            y = alg.forward(x, w, b, g)
            assert y.shape == yr.shape and y.dtype == np.float32
            assert err(y, yr) < tol, (g, "forward", err(y, yr))
            dy = rng.standard_normal(y.shape).astype(np.float32)
            dxr, dwr, dbr = grads(dy)
            dw = np.full_like(w, np.nan)
            db = np.full_like(b, np.nan)
            dx = alg.backward(dy, x, w, g, True, dw, db)
            assert err(dx, dxr) < tol, (g, "backward-data", err(dx, dxr))
            assert err(dw, dwr) < tol, (g, "backward-weights", err(dw, dwr))
            assert err(db, dbr) < 2e-6
            dw2 = np.empty_like(w)
            assert alg.backward(dy, x, w, g, False, dw2, None) is None
            assert err(dw2, dwr) < tol
        checked += 1
    assert checked >= 3


def test_supports():
    win = CONV_ALGORITHMS.get("winograd")()
    assert win.supports(G_(1, 4, 8, 8, 4, 3, 3, (1, 1), (1, 1)))
    assert not win.supports(G_(1, 4, 8, 8, 4, 3, 3, (2, 2), (1, 1)))
    assert not win.supports(G_(1, 4, 8, 8, 4, 5, 5, (1, 1), (2, 2)))
    assert not win.supports(G_(1, 4, 8, 8, 4, 3, 3, (1, 1), (2, 2), (2, 2)))
    assert not win.supports(G_(1, 4, 8, 8, 4, 3, 3, (1, 1), (1, 1), (1, 1), 2))
    imp = CONV_ALGORITHMS.get("implicit")()
    assert imp.supports(G_(1, 4, 8, 8, 4, 3, 3, (1, 1), (1, 1), (2, 2)))
    assert not imp.supports(G_(1, 4, 8, 8, 4, 3, 3, (2, 2), (1, 1)))
    d = CONV_ALGORITHMS.get("direct")()
    assert d.worth_tuning(G_(64, 3, 32, 32, 64, 3, 3)) and not d.worth_tuning(
        G_(64, 256, 8, 8, 256, 3, 3))


def test_livetaps_trims_only_dead_taps():
    from dtnn.conv.livetaps import trimmed
    t = trimmed(G_(64, 256, 1, 1, 256, 3, 3, (1, 1), (1, 1)))
    assert t is not None and (t[0].R, t[0].S, t[0].padding) == (1, 1, (0, 0))
    assert t[1:] == (1, 2, 1, 2)
    assert trimmed(G_(64, 256, 2, 2, 256, 3, 3, (1, 1), (1, 1))) is None   # all taps live
    assert trimmed(G_(2, 3, 8, 8, 4, 3, 3, (1, 1), (1, 1))) is None
    lt = CONV_ALGORITHMS.get("livetaps")()
    assert lt.supports(G_(2, 3, 1, 1, 4, 3, 3, (1, 1), (1, 1)))
    assert not lt.supports(G_(2, 3, 3, 3, 4, 3, 3, (1, 1), (1, 1)))
    # what is returned for the dead taps' weight gradient is exactly zero
    rng = np.random.default_rng(6)
    g = G_(4, 5, 1, 1, 3, 3, 3, (1, 1), (1, 1))
    x = rng.standard_normal((4, 5, 1, 1)).astype(np.float32)
    w = rng.standard_normal((3, 5, 3, 3)).astype(np.float32)
    lt.forward(x, w, None, g)
    dw = np.full_like(w, np.nan)
    lt.backward(rng.standard_normal((4, 3, 1, 1)).astype(np.float32), x, w, g, True, dw, None)
    mask = np.ones((3, 3), bool)
    mask[1, 1] = False
    assert (dw[:, :, mask] == 0).all() and np.isfinite(dw).all()


def test_livetaps_matches_torch_autograd():
    torch = pytest.importorskip("torch", reason="torch not installed")
    rng = np.random.default_rng(8)
    g = G_(6, 16, 1, 1, 12, 3, 3, (1, 1), (1, 1))
    x = rng.standard_normal((6, 16, 1, 1)).astype(np.float32)
    w = rng.standard_normal((12, 16, 3, 3)).astype(np.float32)
    b = rng.standard_normal(12).astype(np.float32)
    dy = rng.standard_normal((6, 12, 1, 1)).astype(np.float32)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, bt, padding=1)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    lt = CONV_ALGORITHMS.get("livetaps")()
    y = lt.forward(x, w, b, g)
    dw, db = np.empty_like(w), np.empty_like(b)
    dx = lt.backward(dy, x, w, g, True, dw, db)
    for ours, ref in ((y, yt), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)):
        assert err(ours, ref.detach().numpy()) < 2e-6


TAPGEMM_SHAPES = [G_(4, 8, 3, 3, 6, 3, 3, (1, 1), (1, 1)),     # VGG's 3x3 block
                  G_(3, 5, 2, 2, 7, 3, 3, (1, 1), (1, 1)),     # 2x2 images
                  G_(2, 4, 3, 5, 3, 3, 3, (1, 1), (1, 1)),     # not square
                  G_(2, 3, 4, 4, 5, 5, 5, (1, 1), (2, 2)),     # 5x5, padding 2
                  G_(2, 3, 5, 4, 4, 3, 3, (1, 1), (2, 1), (2, 1))]  # dilation, mixed pad


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("g", TAPGEMM_SHAPES, ids=lambda g: g.tag if hasattr(g, "tag") else "")
def test_tapgemm_matches_torch_autograd(g, threads, monkeypatch):
    """tapgemm skips the padding products: same answer as torch's full convolution (in
    float64), on one and two OpenMP threads (its GEMMs split over them, the BLAS at one
    thread: the one-pool setting of dtnn.threads)."""
    torch = pytest.importorskip("torch", reason="torch not installed")
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl not installed")
    from dtnn.conv.tapgemm import dead_share
    assert dead_share(g) > 0
    rng = np.random.default_rng(9)
    x = rng.standard_normal((g.N, g.C, g.H, g.W)).astype(np.float32)
    w = rng.standard_normal((g.K, g.C, g.R, g.S)).astype(np.float32)
    b = rng.standard_normal(g.K).astype(np.float32)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, bt, padding=g.padding, dilation=g.dilation)
    dy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    alg = CONV_ALGORITHMS.get("tapgemm")()
    assert alg.supports(g)
    import dtnn.threads as th
    monkeypatch.setattr(th, "_one_pool", threads > 1)
    monkeypatch.setattr(th, "_threads", threads)
    monkeypatch.setattr("dtnn.gemm.MIN_PARALLEL_FLOPS", 0)
    with threadpoolctl.threadpool_limits(threads, user_api="openmp"), \
            threadpoolctl.threadpool_limits(1, user_api="blas"):
        y = alg.forward(x, w, b, g)
        dw, db = np.full_like(w, np.nan), np.full_like(b, np.nan)
        dx = alg.backward(dy, x, w, g, True, dw, db)
    for ours, ref in ((y, yt), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)):
        assert err(ours, ref.detach().numpy()) < 2e-6


def test_tapgemm_dead_share_and_tuning():
    from dtnn.conv.tapgemm import dead_share, tap_rects
    tg = CONV_ALGORITHMS.get("tapgemm")()
    g3 = G_(64, 128, 3, 3, 256, 3, 3, (1, 1), (1, 1))
    assert abs(dead_share(g3) - 32 / 81) < 1e-12 and tg.worth_tuning(g3)
    assert abs(dead_share(G_(64, 8, 2, 2, 8, 3, 3, (1, 1), (1, 1))) - 20 / 36) < 1e-12
    assert tap_rects(g3)[0][1:5] == (0, 3, 0, 3)              # the centre tap: all outputs
    assert not tg.worth_tuning(G_(64, 128, 14, 14, 128, 3, 3, (1, 1), (1, 1)))  # 8 % dead
    assert not tg.worth_tuning(G_(64, 256, 1, 1, 256, 3, 3, (1, 1), (1, 1)))  # livetaps'
    assert not tg.supports(G_(2, 4, 8, 8, 4, 3, 3, (1, 1), (0, 0)))          # nothing dead
    assert not tg.supports(G_(2, 4, 8, 8, 4, 3, 3, (2, 2), (1, 1)))          # stride 2
    assert not tg.supports(G_(2, 4, 8, 8, 4, 3, 3, (1, 1), (1, 1), (1, 1), 2))  # groups


def test_winograd_f4_accuracy_is_documented_gap():
    """F(4x4) is measurably less accurate than F(2x2) but within 1e-5 relative."""
    rng = np.random.default_rng(2)
    g = G_(2, 32, 12, 12, 16, 3, 3, (1, 1), (1, 1))
    x = rng.standard_normal((g.N, g.C, g.H, g.W)).astype(np.float32)
    w = rng.standard_normal((g.K, g.C, 3, 3)).astype(np.float32)
    b = np.zeros(g.K, np.float32)
    yr, _ = conv64(x, w, b, g)
    e2 = err(CONV_ALGORITHMS.get("winograd2")().forward(x, w, b, g), yr)
    e4 = err(CONV_ALGORITHMS.get("winograd4")().forward(x, w, b, g), yr)
    ei = err(CONV_ALGORITHMS.get("im2col")().forward(x, w, b, g), yr)
    assert e4 < 1e-5 and e2 < 1e-6 and ei < 1e-6
    assert e4 > e2


def test_winograd_filter_cache_in_inference_follows_weight_updates():
    rng = np.random.default_rng(3)
    g = G_(2, 4, 8, 8, 4, 3, 3, (1, 1), (1, 1))
    x = rng.standard_normal((g.N, g.C, g.H, g.W)).astype(np.float32)
    w = rng.standard_normal((g.K, g.C, 3, 3)).astype(np.float32)
    alg = CONV_ALGORITHMS.get("winograd4")()
    alg.training = False
    y1 = alg.forward(x, w, None, g)
    assert alg._ucache is not None
    U = alg._ucache[2]
    assert alg.forward(x, w, None, g) is not None and alg._ucache[2] is U   # reused
    w *= 2  # in-place update (optimizer step / checkpoint load)
    y2 = alg.forward(x, w, None, g)
    np.testing.assert_allclose(y2, 2 * y1, rtol=1e-4, atol=1e-4)
    alg.training = True
    alg.forward(x, w, None, g)
    assert alg._ucache is None


@pytest.mark.parametrize("m", [2, 4])
def test_winograd_kernels_match_twins(m, isa_level):
    rng = np.random.default_rng(4)
    for nb, C, H, W, p in [(2, 3, 7, 9, 1), (1, 5, 8, 8, 0), (3, 70, 5, 6, 2)]:
        Ho, Wo = H + 2 * p - 2, W + 2 * p - 2
        th, tw = -(-Ho // m), -(-Wo // m)
        x = rng.standard_normal((nb, C, H, W)).astype(np.float32)
        np.testing.assert_allclose(K_.compiled_winograd_input(x, p, p, m, th, tw),
                                   K_.winograd_input(x, p, p, m, th, tw), atol=1e-4)
        M = rng.standard_normal(((m + 2) ** 2, 4, nb * th * tw)).astype(np.float32)
        b = rng.standard_normal(4).astype(np.float32)
        np.testing.assert_allclose(K_.compiled_winograd_output(M, b, nb, Ho, Wo, m, th, tw),
                                   K_.winograd_output(M, b, nb, Ho, Wo, m, th, tw), atol=1e-4)


def test_direct_and_transpose_kernels_match_twins(isa_level):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    args = (2, 1, 1, 0, 2, 1, 2)
    y = K_.direct_forward(x, w, b, *args)
    np.testing.assert_allclose(K_.compiled_direct_forward(x, w, b, *args), y, atol=1e-4)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(K_.compiled_direct_backward_data(dy, w, 9, 8, *args),
                               K_.direct_backward_data(dy, w, 9, 8, *args), atol=1e-4)
    np.testing.assert_allclose(K_.compiled_direct_backward_weights(dy, x, 3, 2, *args),
                               K_.direct_backward_weights(dy, x, 3, 2, *args), atol=1e-4)
    s = rng.standard_normal((3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(K_.compiled_swap01(s), K_.swap01(s))


def test_kernels_are_listed():
    from dtnn._kernels import active
    act = active()
    for name in ("winograd_input", "winograd_output", "direct_forward", "swap01"):
        assert name in act
