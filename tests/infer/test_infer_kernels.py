"""The fused inference kernels (csrc/infer.c via dtnn._kernels._infer).

Three layers of checks: the numpy twins (dtnn.infer.kernels) against a float64 torch
reference; the compiled kernels against the twins on a seeded sweep of geometries and
activations, once per ISA path (AVX-512, AVX2 + FMA, generic; a path this CPU cannot
run is skipped with the reason), bit-for-bit agreement is not required between paths;
and their argument checks.  Errors are normwise, ||ours - ref|| / ||ref||.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dtnn._kernels import isa as isa_mod
from dtnn.infer import kernels as K

try:
    import dtnn._kernels._infer as _ext
except ImportError:  # extension not built
    _ext = None


def _why_not(level):
    if _ext is None:
        return "dtnn._kernels._infer is not built"
    if isa_mod.requested(strict=False) == "numpy":
        return "DTNN_KERNELS/DTNN_ISA=numpy: the twins run"
    if isa_mod.LEVELS.index(level) > isa_mod.LEVELS.index(isa_mod.cpu()):
        return f"this CPU cannot run the {level} path (its best level: {isa_mod.cpu()})"
    return None


ISAS = [pytest.param(i, id=i, marks=pytest.mark.skipif(_why_not(i) is not None,
                                                     reason=_why_not(i) or "runs"))
        for i in ("avx512", "avx2", "generic")]


def err(a, ref):
    ref = np.asarray(ref, np.float64)
    return float(np.linalg.norm(np.asarray(a, np.float64) - ref) / max(np.linalg.norm(ref), 1e-30))


def ref64(x, w, b, act, alpha, stride, padding, dilation):
    y = F.conv2d(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)),
                 torch.from_numpy(b[:w.shape[0]].astype(np.float64)), stride, padding, dilation)
    if act == K.ACT_RELU:
        y = torch.relu(y)
    elif act == K.ACT_RELU6:
        y = torch.clamp(y, 0, 6)
    elif act == K.ACT_PRELU:
        y = F.prelu(y, torch.from_numpy(alpha[:w.shape[0]].astype(np.float64)))
    return y.numpy()


def _sweep(n, seed, strided):
    """Seeded geometries: odd channel counts (pruned layers), tiny and odd images,
    every padding up to the kernel, dilation, and (``strided``) strides."""
    rng = np.random.default_rng(seed)
    cases = [(1, 3, 28, 28, 17, 3, 3, 1, 1, 1), (2, 7, 5, 9, 8, 3, 3, 1, 1, 1),
             (1, 1, 1, 1, 5, 1, 1, 1, 0, 1), (1, 24, 3, 3, 37, 3, 3, 1, 1, 1),
             (3, 5, 11, 6, 16, 5, 3, 1, 2, 2)]
    while len(cases) < n:
        R = int(rng.choice([1, 3, 5]))
        d = int(rng.integers(1, 3))
        cases.append((int(rng.integers(1, 4)), int(rng.integers(1, 20)),
                      int(rng.integers(R * d, 16)), int(rng.integers(R * d, 16)),
                      int(rng.integers(1, 40)), R, R,
                      int(rng.integers(1, 4)) if strided else 1, int(rng.integers(0, R)), d))
    return cases


def _data(case, act, seed=0):
    N, C, H, W, Kc, R, S, st, p, d = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = (rng.standard_normal((Kc, C, R, S)) / np.sqrt(C * R * S)).astype(np.float32)
    b = rng.standard_normal(Kc).astype(np.float32)
    alpha = rng.uniform(-0.5, 0.5, Kc).astype(np.float32) if act == K.ACT_PRELU else None
    return x, w, b, alpha


def _px(mod, case, act, x, w, b, alpha):
    N, C, H, W, Kc, R, S, st, p, d = case
    nb = -(-Kc // K.PX_KB) * K.PX_KB
    return mod.infer_conv_px(x, K.pack_px(w), K.padded(b, nb),
                             None if alpha is None else K.padded(alpha, nb), act, Kc, R, S,
                             p, p, d, d)


def _ch(mod, case, act, x, w, b, alpha):
    N, C, H, W, Kc, R, S, st, p, d = case
    wck = K.pack_ch(w)
    kp = wck.shape[1]
    return mod.infer_conv_ch(x, wck, K.padded(b, kp),
                             None if alpha is None else K.padded(alpha, kp), act, Kc, R, S,
                             st, st, p, p, d, d)


PX_CASES = _sweep(14, 1, strided=False)
CH_CASES = _sweep(14, 2, strided=True)
ACTS = [K.ACT_NONE, K.ACT_RELU, K.ACT_RELU6, K.ACT_PRELU]


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("kernel", ["px", "ch"])
def test_twins_match_float64_reference(kernel, act):
    for case in (PX_CASES if kernel == "px" else CH_CASES)[:8]:
        x, w, b, alpha = _data(case, act)
        y = (_px if kernel == "px" else _ch)(K, case, act, x, w, b, alpha)
        st, p, d = case[7:]
        assert err(y, ref64(x, w, b, act, alpha, st, p, d)) < 1e-5, case


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("kernel", ["px", "ch"])
def test_compiled_conv_matches_twin_and_reference(kernel, isa):
    call = _px if kernel == "px" else _ch
    with isa_mod.capped(isa):
        assert _ext.isa_active() == isa_mod.LEVELS.index(isa)
        for i, case in enumerate(PX_CASES if kernel == "px" else CH_CASES):
            act = ACTS[i % 4]
            x, w, b, alpha = _data(case, act, seed=i)
            y = call(_ext, case, act, x, w, b, alpha)
            assert y.shape == call(K, case, act, x, w, b, alpha).shape
            assert err(y, call(K, case, act, x, w, b, alpha)) < 1e-5, case
            assert err(y, ref64(x, w, b, act, alpha, *case[7:])) < 1e-5, case


@pytest.mark.parametrize("isa", ISAS)
def test_dense_as_channel_kernel(isa):
    rng = np.random.default_rng(3)
    for Fi, units in ((1, 1), (37, 10), (102, 102), (640, 17)):
        x = rng.standard_normal((3, Fi)).astype(np.float32)
        w = rng.standard_normal((Fi, units)).astype(np.float32)
        b = rng.standard_normal(units).astype(np.float32)
        wck = K.pack_dense(w)
        with isa_mod.capped(isa):
            y = _ext.infer_conv_ch(x.reshape(3, Fi, 1, 1), wck, K.padded(b, wck.shape[1]),
                                   None, K.ACT_RELU, units, 1, 1, 1, 1, 0, 0, 1, 1)
        ref = np.maximum(x.astype(np.float64) @ w + b, 0)
        assert err(y.reshape(3, units), ref) < 1e-5


@pytest.mark.parametrize("isa", ISAS)
def test_affine_and_maxpool_match_twins(isa):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 7, 9)).astype(np.float32)
    s, t = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    a = rng.uniform(0, 0.5, 5).astype(np.float32)
    with isa_mod.capped(isa):
        for act in ACTS:
            for sc, sh in ((s, t), (None, t), (s, None), (None, None)):
                want = K.infer_affine_act(x, sc, sh, act, a)
                assert err(_ext.infer_affine_act(x, sc, sh, act, a), want) < 1e-6
                inplace = x.copy()
                _ext.infer_affine_act(inplace, sc, sh, act, a, out=inplace)
                assert err(inplace, want) < 1e-6
        for geo in ((2, 2, 2, 2, 0, 0), (3, 3, 2, 2, 1, 1), (3, 2, 1, 2, 0, 1), (7, 9, 1, 1, 0, 0)):
            assert np.array_equal(_ext.infer_maxpool(x, *geo), K.infer_maxpool(x, *geo)), geo


@pytest.mark.parametrize("isa", ISAS)
def test_executor_ops_reuse_their_buffers(isa):
    """A bound op is called again and again: the padded copy's border must stay zero
    and the results must not depend on the previous call."""
    case = (1, 6, 7, 5, 11, 3, 3, 1, 1, 1)
    x1, w, b, alpha = _data(case, K.ACT_PRELU, seed=5)
    x2 = _data(case, K.ACT_PRELU, seed=6)[0] * 100
    nb = -(-11 // K.PX_KB) * K.PX_KB
    with isa_mod.capped(isa):
        op = _ext.ConvPxOp(1, (6, 7, 5), K.pack_px(w), K.padded(b, nb), K.padded(alpha, nb),
                           K.ACT_PRELU, 11, 3, 3, 1, 1, 1, 1)
        y2 = np.array(_ext.run([op], x2))
        y1 = np.array(_ext.run([op], x1))
    assert err(y1, ref64(x1, w, b, K.ACT_PRELU, alpha, 1, 1, 1)) < 1e-5
    assert err(y2, ref64(x2, w, b, K.ACT_PRELU, alpha, 1, 1, 1)) < 1e-5


@pytest.mark.skipif(_ext is None, reason="dtnn._kernels._infer is not built")
@pytest.mark.parametrize("call", [
    lambda: _ext.infer_conv_px(np.zeros((1, 2, 4, 4), np.float32), np.zeros((1, 9, 8), np.float32),
                               np.zeros(8, np.float32), None, 0, 5, 3, 3, 1, 1, 1, 1),
    lambda: _ext.infer_conv_px(np.zeros((1, 2, 4, 4), np.float64), np.zeros((1, 18, 8), np.float32),
                               np.zeros(8, np.float32), None, 0, 5, 3, 3, 1, 1, 1, 1),
    lambda: _ext.infer_conv_ch(np.zeros((1, 2, 4, 4), np.float32), np.zeros((18, 16), np.float32),
                               np.zeros(4, np.float32), None, 0, 5, 3, 3, 1, 1, 1, 1, 1, 1),
    lambda: _ext.infer_conv_ch(np.zeros((1, 2, 4, 4), np.float32), np.zeros((18, 16), np.float32),
                               np.zeros(16, np.float32), None, 7, 5, 3, 3, 1, 1, 1, 1, 1, 1),
    lambda: _ext.infer_conv_ch(np.zeros((1, 2, 2, 2), np.float32), np.zeros((18, 16), np.float32),
                               np.zeros(16, np.float32), None, 0, 5, 3, 3, 1, 1, 0, 0, 1, 1),
    lambda: _ext.infer_maxpool(np.zeros((1, 2, 4, 4), np.float32), 2, 2, 2, 2, 0, 0,
                               out=np.zeros((1, 2, 3, 3), np.float32)),
], ids=["wpk-shape", "x-dtype", "bias-short", "act", "kernel-too-big", "out-shape"])
def test_bad_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


@pytest.mark.skipif(_ext is None, reason="dtnn._kernels._infer is not built")
def test_isa_report_lists_the_infer_kernels():
    assert "dtnn._kernels._infer" in isa_mod.ISA_MODULES
    paths = _ext.isa_paths()
    assert set(paths["infer_conv_px"]) == {"avx512", "avx2", "generic"}
    report = isa_mod.kernel_report()
    if isa_mod.requested(strict=False) != "numpy":
        assert report["infer_conv_px"]["runs"] == isa_mod.runnable(paths["infer_conv_px"],
                                                                  isa_mod.active())[0]
