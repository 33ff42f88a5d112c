"""ReLU6, depthwise convolution, Residual/Concat blocks and the MobileNet V2 inverted
residual block against torch autograd (float64), plus packing and checkpoints."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dtnn.errors import ConfigError
from dtnn.layers import (BatchNorm, Concat, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool,
                         ReLU, ReLU6, Residual)
from dtnn.models import Model, Sequential, inverted_residual

from ._helpers import close, rand, run_model, t64, torch_backward

TOL = 2e-4  # float32 layers vs float64 torch, through several layers


def test_relu6_matches_torch():
    x = rand((4, 3, 5, 5), scale=5.0)
    x[0, 0, 0, :3] = [0.0, 6.0, 3.0]   # the kinks: no gradient there (torch hardtanh)
    dy = rand((4, 3, 5, 5), seed=1)
    y, dx, _, _ = run_model(ReLU6(), x, dy)
    xt = t64(x, grad=True)
    yt = F.hardtanh(xt, 0.0, 6.0)
    close(y, yt, 1e-6, "relu6 forward")
    close(dx, torch_backward(yt, dy, [xt])[0], 1e-6, "relu6 dx")


@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_conv_matches_torch(stride):
    x, dy_shape = rand((2, 6, 9, 9)), (2, 6, (9 - 1) // stride + 1, (9 - 1) // stride + 1)
    dy = rand(dy_shape, seed=2)
    conv = Conv2D(6, 3, stride=stride, padding=1, groups=6, bias=False)
    y, dx, grads, _ = run_model(conv, x, dy)
    xt, wt = t64(x, grad=True), t64(conv.params["weight"], grad=True)
    yt = F.conv2d(xt, wt, stride=stride, padding=1, groups=6)
    close(y, yt, 1e-5, "depthwise forward")
    gx, gw = torch_backward(yt, dy, [xt, wt])
    close(dx, gx, 1e-5, "depthwise dx")
    close(grads["weight"], gw, 1e-5, "depthwise dw")


def _torch_chain(x, layers, leaves):
    """Run dtnn layers' maths in torch (float64), collecting parameter leaves."""
    h = x
    for layer in layers:
        if isinstance(layer, Conv2D):
            w = t64(layer.params["weight"], True)
            leaves[layer] = {"weight": w}
            h = F.conv2d(h, w, stride=layer.stride, padding=layer.padding,
                         groups=layer.config["groups"])
        elif isinstance(layer, BatchNorm):
            g, b = t64(layer.params["gamma"], True), t64(layer.params["beta"], True)
            leaves[layer] = {"gamma": g, "beta": b}
            h = F.batch_norm(h, None, None, g, b, training=True, eps=layer.eps)
        elif isinstance(layer, ReLU6):
            h = F.hardtanh(h, 0.0, 6.0)
        elif isinstance(layer, ReLU):
            h = F.relu(h)
        else:
            raise AssertionError(layer)
    return h


def _randomise_bn(layers, seed):
    rng = np.random.default_rng(seed)
    for layer in layers:
        if isinstance(layer, BatchNorm):
            layer.params["gamma"][...] = rng.uniform(0.5, 1.5, layer.params["gamma"].shape)
            layer.params["beta"][...] = rng.uniform(-0.5, 0.5, layer.params["beta"].shape)


def _compare(layers, x, torch_fn, merge_layer=None):
    """Model([Probe] + layers) vs ``torch_fn(xt, leaves)`` (float64): output, d(input)
    and every parameter gradient, which must live in the model's flat vector."""
    from ._helpers import Probe
    model = Model([Probe()] + layers, x.shape[1:]).build(0)
    _randomise_bn([l for l in layers] + [c for l in layers if hasattr(l, "children")
                                         for _, _, c in l.children()], 5)
    dy = rand(model.forward(x, training=True).shape, seed=3)
    y = model.forward(x, training=True)
    model.backward(dy)
    leaves = {}
    xt = t64(x, grad=True)
    yt = torch_fn(xt, leaves)
    close(y, yt, TOL, "forward")
    flat = [(l, n, t) for l, d in leaves.items() for n, t in d.items()]
    got = torch_backward(yt, dy, [xt] + [t for _, _, t in flat])
    close(model.layers[0].dx, got[0], TOL, "dx")   # the Probe saw d(input)
    for (layer, name, _), ref in zip(flat, got[1:]):
        close(layer.grads[name], ref, TOL, f"{layer.name} d{name}")
        assert np.shares_memory(layer.grads[name], model.flat_grads)


def _check_block(block, body, shortcut, x, merge="add"):
    def reference(xt, leaves):
        hb = _torch_chain(xt, body, leaves)
        hs = _torch_chain(xt, shortcut, leaves) if shortcut else xt
        return hb + hs if merge == "add" else torch.cat([hb, hs], 1)
    _compare([block], x, reference)


def _check_chain(layers, x):
    _compare(layers, x, lambda xt, leaves: _torch_chain(xt, layers, leaves))


def _body(c_in, c_out, stride=1):
    return [Conv2D(c_out, 3, stride=stride, padding=1, bias=False), BatchNorm(), ReLU(),
            Conv2D(c_out, 3, padding=1, bias=False), BatchNorm()]


def test_residual_identity_matches_torch():
    body = _body(4, 4)
    _check_block(Residual(body), body, None, rand((3, 4, 6, 6)))


def test_residual_projection_matches_torch():
    body = _body(4, 8, stride=2)
    shortcut = [Conv2D(8, 1, stride=2, bias=False), BatchNorm()]
    _check_block(Residual(body, shortcut), body, shortcut, rand((3, 4, 6, 6)))


def test_concat_matches_torch():
    branch = [Conv2D(5, 3, padding=1, bias=False), BatchNorm(), ReLU6()]
    _check_block(Concat([branch, []]), branch, None, rand((2, 3, 5, 5)), merge="concat")


@pytest.mark.parametrize("c_in, c_out, stride, expand", [(8, 8, 1, 6), (8, 16, 2, 6),
                                                          (8, 8, 1, 1)])
def test_inverted_residual_matches_torch(c_in, c_out, stride, expand):
    layers = inverted_residual(c_in, c_out, stride, expand)
    x = rand((2, c_in, 8, 8))
    if stride == 1 and c_in == c_out:
        assert len(layers) == 1 and isinstance(layers[0], Residual)
        block = layers[0]
        body = block.branches[0]
        _check_block(block, body, None, x)
    else:
        assert not any(isinstance(l, Residual) for l in layers)
        _check_chain(layers, x)
    kinds = [type(l).__name__ for l in (layers[0].branches[0] if isinstance(layers[0], Residual)
                                       else layers)]
    assert kinds[-2:] == ["Conv2D", "BatchNorm"] and "ReLU6" in kinds  # linear bottleneck


def test_block_errors_are_clear():
    with pytest.raises(ConfigError, match="projection"):
        Sequential([Residual([Conv2D(8, 3, padding=1)])], input_shape=(4, 6, 6))
    with pytest.raises(ConfigError, match="between blocks"):
        Residual([Dense(4), Dropout(0.5)])
    with pytest.raises(ConfigError, match="two branches"):
        Concat([[Dense(3)]])


def test_sequential_with_blocks_packs_checkpoints_and_rebuilds(tmp_path):
    from dtnn.io.checkpoint import load_checkpoint, save_checkpoint
    pin = dict(algorithm="im2col")   # pinned: two forwards are compared bitwise below
    net = Sequential([Conv2D(4, 3, padding=1, **pin), BatchNorm(), ReLU(),
                      Residual([Conv2D(4, 3, padding=1, bias=False, **pin), BatchNorm(),
                                ReLU6()]),
                      Concat([[Conv2D(2, 1, **pin)], []]), GlobalAvgPool(), Dense(3)],
                     input_shape=(1, 6, 6), seed=4)
    assert net.output_shape == (3,)
    assert net.num_params() == sum(l.num_params() for l in net.layers)
    names = [s.name for s in net.slots if s.layer_index == 3]
    assert names and all(n.count(".") == 2 for n in names)
    decayed = {s.name for s in net.slots if s.layer_index == 3 and s.decay}
    assert decayed == {"0.0.weight"}
    x = rand((5, 1, 6, 6))
    net.forward(x, training=True)  # moves BN running statistics inside the block
    save_checkpoint(str(tmp_path / "c.h5"), net, step=1, epoch=1)
    back = load_checkpoint(str(tmp_path / "c.h5")).model
    assert np.array_equal(back.flat_params, net.flat_params)
    for k, v in net.buffers().items():
        assert np.array_equal(back.buffers()[k], v), k
    np.testing.assert_array_equal(back.forward(x), net.forward(x))
    clone = Model.from_config(net.get_config())
    assert clone.config_json() == net.config_json()
