"""ReLU and PReLU against torch autograd."""
import numpy as np
import pytest
import torch.nn.functional as F

from dtnn.layers import PReLU, ReLU
from dtnn.models.model import Model

from ._helpers import close, rand, run_model, t64, torch_backward

SHAPES = [(2, 3, 4, 5), (1, 6), (5, 2, 7), (3, 1, 1, 1)]


@pytest.mark.parametrize("shape", SHAPES)
def test_relu_matches_torch(shape):
    x = rand(shape, seed=1)
    x.flat[0] = 0.0   # torch's gradient at exactly 0 is 0
    dy = rand(shape, seed=2)
    x_before, dy_before = x.copy(), dy.copy()
    y, dx, grads, _ = run_model(ReLU(), x, dy)
    xt = t64(x, True)
    yt = F.relu(xt)
    (gx,) = torch_backward(yt, dy, [xt])
    close(y, yt, 0, "y")
    close(dx, gx, 0, "dx")
    assert y.dtype == np.float32 and dx.dtype == np.float32 and grads == {}
    np.testing.assert_array_equal(x, x_before)    # inputs are never modified
    np.testing.assert_array_equal(dy, dy_before)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("channelwise", [True, False])
def test_prelu_matches_torch(shape, channelwise):
    x = rand(shape, seed=1)
    dy = rand(shape, seed=2)
    C = shape[1]
    alpha = (np.linspace(0.05, 0.6, C) if channelwise else np.array([0.3])).astype(np.float32)
    layer = PReLU(init=0.1, channelwise=channelwise)
    y, dx, grads, _ = run_model(layer, x, dy,
                                setup=lambda l: l.params["alpha"].__setitem__(Ellipsis, alpha))
    assert layer.params["alpha"].shape == ((C,) if channelwise else (1,))
    assert layer.decay_params == ()
    xt, at = t64(x, True), t64(alpha, True)
    yt = F.prelu(xt, at)
    gx, ga = torch_backward(yt, dy, [xt, at])
    close(y, yt, 1e-6, "y")
    close(dx, gx, 1e-6, "dx")
    close(grads["alpha"], ga, 1e-5, "dalpha")


def test_prelu_init_value():
    layer = PReLU()
    Model([layer], (4, 3, 3)).build(0)
    np.testing.assert_array_equal(layer.params["alpha"], np.full(4, 0.25, np.float32))
