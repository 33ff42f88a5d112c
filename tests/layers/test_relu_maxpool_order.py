"""A relu followed by a maxpool2d runs pool first (Model.pool_before_relu): the same
output and gradient bits as layer by layer, and both match torch autograd in float64."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dtnn.layers.activation import ReLU
from dtnn.layers.conv import Conv2D
from dtnn.layers.dense import Dense
from dtnn.layers.flatten import Flatten
from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.layers.pooling import MaxPool2D
from dtnn.models import build_model
from dtnn.models.model import Model

from ._helpers import Probe, close

torch.set_num_threads(1)


def overlapping_model():
    """Overlapping, padded windows (3x3, stride 2, pad 1), and a relu + pool right after
    the input probe, so the pair's input gradient is checked too."""
    return Model([Probe(), ReLU(), MaxPool2D(3, stride=2, padding=1),
                  Conv2D(6, 3, padding=1, algorithm="im2col"), ReLU(), MaxPool2D(2),
                  Flatten(), Dense(5)], (3, 10, 10))


def simplecnn():
    return build_model("simplecnn", (1, 12, 12), 5, seed=0, filters=4, hidden=16,
                       conv_algorithm="im2col")


def batch(seed):
    r = np.random.default_rng(seed)
    x = r.standard_normal((4, 3, 10, 10)).astype(np.float32)
    x[0, :, :4, :4] = -1.0                  # whole windows below zero
    x[1, :, 2:6, 2:6] = 0.5                 # ties between positive maxima
    x[2, 0, :, :] = 0.0                     # zeros: ties at the relu's kink
    return x, r.integers(0, 5, 4)


def step(model, pool_first, x, y):
    model.pool_before_relu = pool_first
    calls = []
    loss = SoftmaxCrossEntropy()
    out = model.forward(x, training=True)
    swapped = list(model._pooled_first)
    loss.forward(out, y)
    model.backward(loss.backward(), on_grads_ready=calls.append)
    dx = model.layers[0].dx.copy() if isinstance(model.layers[0], Probe) else None
    return out.copy(), model.flat_grads.copy(), dx, calls, swapped


@pytest.mark.parametrize("make", [overlapping_model, simplecnn])
def test_pool_first_gives_the_same_bits(make):
    model = make()
    if not model.built:
        model.build(3)
    shape = (4,) + model.input_shape
    x, y = batch(1)
    x = np.ascontiguousarray(np.resize(x, shape))
    a = step(model, True, x, y)
    b = step(model, False, x, y)
    for u, v in zip(a[:3], b[:3]):
        assert (u is None and v is None) or np.array_equal(u, v)
    assert a[3] == b[3] == list(reversed(range(len(model.layers))))
    pairs = [i for i in range(len(model.layers) - 1)
             if type(model.layers[i]) is ReLU and type(model.layers[i + 1]) is MaxPool2D]
    assert pairs and a[4] == pairs and b[4] == []
    # inference takes the same path: same logits
    model.pool_before_relu = True
    inf_a = model.forward(x, training=False).copy()
    model.pool_before_relu = False
    np.testing.assert_array_equal(inf_a, model.forward(x, training=False))


def test_pool_first_matches_torch_autograd():
    from dtnn.export.torch_twin import torch_twin
    model = overlapping_model().build(5)
    x, y = batch(2)
    out, grads, dx, _, swapped = step(model, True, x, y)
    assert swapped == [1, 4]
    twin = torch_twin(SimpleNamespace(built=True, layers=model.layers[1:])).double()
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    logits = twin(xt)
    torch.nn.functional.cross_entropy(logits, torch.tensor(y)).backward()
    close(out, logits.detach().numpy(), what="logits")
    close(dx, xt.grad.numpy(), what="d input")
    close(model.layers[3].grads["weight"], twin[2].weight.grad.numpy(), what="conv weight")
    close(model.layers[7].grads["weight"], twin[6].weight.grad.numpy().T, what="dense weight")
