"""Conv2D + the im2col variant against torch autograd (float64 reference)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dtnn.conv import CONV_ALGORITHMS, ConvGeometry
from dtnn.conv.im2col import Im2ColConv
from dtnn.errors import ConfigError
from dtnn.layers import Conv2D
from dtnn.models.model import Model

from ._helpers import close, rand, run_model, t64, torch_backward

# (N, C, H, W, K, kernel, stride, padding, dilation, groups, bias)
CASES = [
    (2, 3, 8, 8, 4, 3, 1, 1, 1, 1, True),
    (1, 4, 7, 9, 6, [3, 2], [2, 1], [1, 0], 1, 2, True),        # batch 1, rectangular, groups
    (3, 6, 10, 10, 6, 3, 1, 2, 2, 6, False),                    # depthwise + dilation
    (2, 6, 6, 7, 12, 3, 1, "same", 1, 6, True),                 # depthwise x2 multiplier
    (2, 8, 9, 9, 16, 1, 1, 0, 1, 1, True),                      # pointwise fast path
    (3, 8, 9, 9, 8, 1, 1, 0, 1, 4, True),                       # grouped pointwise
    (2, 8, 9, 9, 8, 1, 2, 0, 1, 4, True),                       # strided 1x1 (general path)
    (5, 3, 12, 12, 5, 5, 2, 2, 1, 1, True),
    (2, 2, 5, 5, 3, 5, 1, "valid", 1, 1, True),                 # 1x1 output
    (1, 5, 11, 8, 7, [1, 3], [3, 2], [0, 1], [1, 2], 1, True),
    (4, 4, 6, 6, 4, 3, 1, "same", 2, 2, True),                  # dilated "same", groups
]


def _torch_padding(padding, kernel, dilation):
    if padding == "same":
        k = kernel if isinstance(kernel, list) else [kernel, kernel]
        d = dilation if isinstance(dilation, list) else [dilation, dilation]
        return [di * (ki - 1) // 2 for ki, di in zip(k, d)]
    return 0 if padding == "valid" else padding


@pytest.mark.parametrize("case", CASES, ids=[f"c{i}" for i in range(len(CASES))])
def test_conv2d_matches_torch_in_a_model(case):
    N, C, H, W, K, k, s, p, d, g, bias = case
    layer = Conv2D(K, k, stride=s, padding=p, dilation=d, groups=g, bias=bias)
    x = rand((N, C, H, W), seed=1)
    ho_wo = Model([Conv2D(K, k, stride=s, padding=p, dilation=d, groups=g)],
                  (C, H, W)).build().output_shape
    dy = rand((N,) + ho_wo, seed=2)
    bvals = rand((K,), seed=3)

    def setup(lay):
        if bias:
            lay.params["bias"][...] = bvals

    y, dx, grads, model = run_model(layer, x, dy, seed=5, setup=setup)
    assert layer.output_shape == ho_wo

    xt, wt = t64(x, True), t64(layer.params["weight"], True)
    bt = t64(bvals, True) if bias else None
    yt = F.conv2d(xt, wt, bt, stride=s, padding=_torch_padding(p, k, d), dilation=d, groups=g)
    leaves = [xt, wt] + ([bt] if bias else [])
    tg = torch_backward(yt, dy, leaves)
    close(y, yt, 1e-5, "y")
    assert y.dtype == np.float32 and y.flags.c_contiguous
    close(dx, tg[0], 1e-5, "dx")
    close(grads["weight"], tg[1], 1e-5, "dw")
    if bias:
        close(grads["bias"], tg[2], 1e-5, "db")
    else:
        assert "bias" not in grads


@pytest.mark.parametrize("chunk", [1, 2, 3, None])
@pytest.mark.parametrize("geom", [
    ConvGeometry(N=5, C=6, H=8, W=8, K=4, R=3, S=3, padding=(1, 1), groups=2),
    ConvGeometry(N=7, C=4, H=9, W=7, K=8, R=2, S=3, stride=(2, 1), dilation=(2, 1)),
    ConvGeometry(N=5, C=6, H=8, W=8, K=12, R=1, S=1, groups=3),
    ConvGeometry(N=3, C=4, H=6, W=6, K=4, R=3, S=3, padding=(1, 1), groups=4),
])
def test_im2col_algorithm_chunking(geom, chunk):
    """Chunks of 1 image, partial last chunks, and the whole batch give one answer."""
    ho, wo = geom.out_hw
    per_image = geom.C * geom.R * geom.S * ho * wo * 4
    algo = Im2ColConv(workspace_bytes=per_image * chunk if chunk else 1 << 30)
    assert algo.chunk_size(geom) == (chunk or geom.N)
    x = rand((geom.N, geom.C, geom.H, geom.W), seed=4)
    w = rand((geom.K, geom.C // geom.groups, geom.R, geom.S), seed=5)
    b = rand((geom.K,), seed=6)
    dy = rand((geom.N, geom.K, ho, wo), seed=7)
    y = algo.forward(x, w, b, geom)
    dw = np.full(w.shape, np.nan, np.float32)   # must be overwritten, not accumulated
    db = np.full(b.shape, np.nan, np.float32)
    dx = algo.backward(dy, x, w, geom, True, dw, db)

    xt, wt, bt = t64(x, True), t64(w, True), t64(b, True)
    yt = F.conv2d(xt, wt, bt, stride=geom.stride, padding=geom.padding,
                  dilation=geom.dilation, groups=geom.groups)
    gx, gw, gb = torch_backward(yt, dy, [xt, wt, bt])
    close(y, yt, 1e-5, "y")
    close(dx, gx, 1e-5, "dx")
    close(dw, gw, 1e-5, "dw")
    close(db, gb, 1e-5, "db")
    # no dx requested: None, and the weight gradients are unchanged
    dw2 = np.zeros_like(w)
    assert algo.backward(dy, x, w, geom, False, dw2, None) is None
    close(dw2, gw, 1e-5, "dw (no dx)")


def test_chunk_size_respects_workspace_budget():
    algo = Im2ColConv()
    g = ConvGeometry(N=64, C=32, H=14, W=14, K=64, R=3, S=3, padding=(1, 1))
    chunk = algo.chunk_size(g)
    assert 1 <= chunk < 64
    assert 32 * 9 * chunk * 196 * 4 <= algo.workspace_bytes
    big = ConvGeometry(N=4, C=64, H=224, W=224, K=64, R=3, S=3, padding=(1, 1))
    assert algo.chunk_size(big) == 1


def test_conv2d_dw_written_in_place_and_not_accumulated():
    layer = Conv2D(3, 3, padding=1, algorithm="im2col")   # pinned: compares two calls bitwise
    x = rand((2, 2, 5, 5), seed=1)
    dy = rand((2, 3, 5, 5), seed=2)
    _, _, g1, model = run_model(layer, x, dy)
    first = model.flat_grads.copy()
    model.forward(x, training=True)
    model.backward(dy)
    np.testing.assert_array_equal(model.flat_grads, first)
    assert np.abs(first).sum() > 0


def test_conv2d_first_layer_returns_no_input_grad():
    model = Model([Conv2D(4, 3)], (2, 6, 6)).build(0)
    y = model.forward(rand((2, 2, 6, 6)), training=True)
    assert model.layers[0].needs_input_grad is False
    assert model.layers[0].backward(np.ones_like(y)) is None


def test_conv2d_decay_and_init():
    model = Model([Conv2D(8, 3, groups=2)], (4, 6, 6)).build(0)
    layer = model.layers[0]
    assert layer.params["weight"].shape == (8, 2, 3, 3)
    assert layer.decay_params == ("weight",)
    assert np.all(layer.params["bias"] == 0)
    std = float(layer.params["weight"].std())
    assert 0.5 * np.sqrt(2 / 18) < std < 1.5 * np.sqrt(2 / 18)
    # same seed -> same weights; different seed -> different
    again = Model([Conv2D(8, 3, groups=2)], (4, 6, 6)).build(0)
    other = Model([Conv2D(8, 3, groups=2)], (4, 6, 6)).build(1)
    np.testing.assert_array_equal(model.flat_params, again.flat_params)
    assert not np.array_equal(model.flat_params, other.flat_params)


def test_conv2d_algorithm_is_public_and_swappable():
    layer = Conv2D(4, 3, padding=1)
    model = Model([layer], (3, 6, 6)).build(0)
    assert isinstance(layer.algorithm, CONV_ALGORITHMS.get("bestof"))      # the default
    x = rand((3, 3, 6, 6))
    y1 = model.forward(x)
    layer.algorithm = Im2ColConv(workspace_bytes=1)
    np.testing.assert_allclose(model.forward(x), y1, rtol=1e-6, atol=1e-6)
    g = layer.geometry(3)
    assert (g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.padding) == (3, 3, 6, 6, 4, 3, 3, (1, 1))


@pytest.mark.parametrize("kwargs, shape, match", [
    (dict(out_channels=4, kernel_size=3, groups=2), (3, 8, 8), "divisible by groups"),
    (dict(out_channels=3, kernel_size=3, groups=2), (4, 8, 8), "divisible"),
    (dict(out_channels=4, kernel_size=5), (3, 4, 4), "output size"),
    (dict(out_channels=4, kernel_size=3, dilation=3), (3, 6, 6), "output size"),
    (dict(out_channels=4, kernel_size=3, stride=2, padding="same"), (3, 8, 8), "stride 1"),
    (dict(out_channels=4, kernel_size=2, padding="same"), (3, 8, 8), "symmetric"),
    (dict(out_channels=4, kernel_size=3, padding="full"), (3, 8, 8), "padding"),
    (dict(out_channels=4, kernel_size=0), (3, 8, 8), "kernel_size"),
    (dict(out_channels=4, kernel_size=[3, 3, 3]), (3, 8, 8), "kernel_size"),
    (dict(out_channels=4, kernel_size=3, algorithm="nope"), (3, 8, 8), "unknown"),
    (dict(out_channels=4, kernel_size=3), (3, 8), "3-D"),
])
def test_conv2d_config_errors(kwargs, shape, match):
    with pytest.raises(ConfigError, match=match):
        Model([Conv2D(**kwargs)], shape).build(0)


def test_same_padding_keeps_size():
    for k, d in [(3, 1), (5, 1), (3, 2), ([1, 3], [1, 3])]:
        model = Model([Conv2D(2, k, padding="same", dilation=d)], (1, 9, 7)).build(0)
        assert model.output_shape == (2, 9, 7)


def test_conv2d_float32_reference_tolerance():
    """Larger case at float32: error vs torch float64 stays at float32 rounding level."""
    torch.manual_seed(0)
    layer = Conv2D(16, 3, padding=1)
    x = rand((4, 16, 12, 12), seed=11)
    dy = rand((4, 16, 12, 12), seed=12)
    y, dx, grads, _ = run_model(layer, x, dy)
    xt, wt, bt = t64(x, True), t64(layer.params["weight"], True), t64(layer.params["bias"], True)
    yt = F.conv2d(xt, wt, bt, padding=1)
    gx, gw, gb = torch_backward(yt, dy, [xt, wt, bt])
    close(y, yt, 2e-6, "y")
    close(dx, gx, 2e-6, "dx")
    close(grads["weight"], gw, 2e-6, "dw")
    close(grads["bias"], gb, 2e-6, "db")
