"""The first layer's backward in batch parts with progress points between them (#17):
same gradients (torch float64 autograd as the oracle), the hook sees PROGRESS between
the parts, and without a hook nothing changes."""
import numpy as np
import pytest
import torch

from dtnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.models.model import PROGRESS, Model


def _net(bias=True):
    return Model([Conv2D(6, 3, padding=1, bias=bias, algorithm="im2col"), ReLU(),
                  MaxPool2D(2), Flatten(), Dense(5)], (2, 8, 8)).build(3)


def _step(net, x, y, hook=None):
    loss = SoftmaxCrossEntropy()
    loss.forward(net.forward(x, training=True), y)
    net.backward(loss.backward(), on_grads_ready=hook)
    return net.flat_grads.copy()


@pytest.mark.parametrize("batch,parts", [(8, 4), (7, 3), (5, 2)])
def test_split_first_layer_matches_torch_and_calls_progress(batch, parts):
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch, 2, 8, 8)).astype(np.float32)
    y = rng.integers(0, 5, batch)
    net = _net()
    net.progress_parts = parts
    calls = []
    grads = _step(net, x, y, calls.append)
    # PROGRESS parts - 1 times, all between the last other layer's hook and layer 0's
    assert calls.count(PROGRESS) == parts - 1
    assert calls[-parts:] == [PROGRESS] * (parts - 1) + [0]
    assert sorted(c for c in calls if c != PROGRESS) == list(range(len(net.layers)))
    # oracle: torch autograd in float64 of the conv with the dy dtnn fed it
    conv = net.layers[0]
    ref = _net()
    ref.forward(x, training=True)
    dy = _capture_conv_dy(ref, x, y)
    xt = torch.tensor(x, dtype=torch.float64)
    w = torch.tensor(conv.params["weight"], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(conv.params["bias"], dtype=torch.float64, requires_grad=True)
    out = torch.nn.functional.conv2d(xt, w, b, padding=1)
    out.backward(torch.tensor(dy, dtype=torch.float64))
    np.testing.assert_allclose(conv.grads["weight"], w.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(conv.grads["bias"], b.grad.numpy(), rtol=1e-4, atol=1e-5)
    # every other layer's gradient is the one-call run's, bit for bit
    one = _net()
    one.progress_parts = 1
    whole = _step(one, x, y, lambda i: None)
    a, _ = net.layer_param_range(0)
    _, e = net.layer_param_range(0)
    mask = np.ones(grads.size, bool)
    mask[a:e] = False
    assert np.array_equal(grads[mask], whole[mask])
    np.testing.assert_allclose(grads[~mask], whole[~mask], rtol=1e-5, atol=1e-6)


def _capture_conv_dy(net, x, y):
    """dL/d(conv output) of one step, as dtnn computed it (the first layer's input)."""
    conv, seen = net.layers[0], {}
    orig = conv.backward

    def spy(dy):
        seen["dy"] = np.array(dy, copy=True)
        return orig(dy)
    conv.backward = spy
    _step(net, x, y)
    return seen["dy"]


def test_without_hook_or_with_too_few_images_it_is_one_call():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 8, 8)).astype(np.float32)
    y = rng.integers(0, 5, 3)
    plain, hooked, single = _net(bias=False), _net(bias=False), _net(bias=False)
    hooked.progress_parts, single.progress_parts = 4, 1   # 3 images < 4 parts
    calls = []
    g_plain = _step(plain, x, y)
    g_hooked = _step(hooked, x, y, calls.append)
    g_single = _step(single, x, y, lambda i: None)
    assert PROGRESS not in calls
    assert np.array_equal(g_plain, g_hooked) and np.array_equal(g_plain, g_single)
