"""Dense and Flatten against torch autograd, through the packed model vectors."""
import numpy as np
import pytest
import torch.nn.functional as F

from dtnn.errors import ConfigError
from dtnn.layers import Conv2D, Dense, Flatten
from dtnn.models.model import Model

from ._helpers import close, rand, run_model, t64, torch_backward


@pytest.mark.parametrize("N, Fin, units, bias", [(1, 5, 3, True), (7, 16, 10, True),
                                                  (4, 3, 1, False), (33, 64, 20, True)])
def test_dense_matches_torch(N, Fin, units, bias):
    x = rand((N, Fin), seed=1)
    dy = rand((N, units), seed=2)
    b = rand((units,), seed=3)
    layer = Dense(units, bias=bias)
    y, dx, grads, _ = run_model(layer, x, dy, setup=(lambda l: l.params["bias"].__setitem__(
        Ellipsis, b)) if bias else None)
    assert layer.params["weight"].shape == (Fin, units)
    xt, wt = t64(x, True), t64(layer.params["weight"], True)
    bt = t64(b, True) if bias else None
    yt = F.linear(xt, wt.T, bt)
    tg = torch_backward(yt, dy, [xt, wt] + ([bt] if bias else []))
    close(y, yt, 1e-5, "y")
    close(dx, tg[0], 1e-5, "dx")
    close(grads["weight"], tg[1], 1e-5, "dw")
    if bias:
        close(grads["bias"], tg[2], 1e-5, "db")
    assert layer.decay_params == ("weight",)


def test_dense_glorot_init_range():
    layer = Dense(50)
    Model([layer], (30,)).build(0)
    limit = np.sqrt(6 / 80)
    w = layer.params["weight"]
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.9 * limit


def test_dense_requires_flat_input():
    with pytest.raises(ConfigError, match="Flatten"):
        Model([Dense(4)], (3, 4, 4)).build(0)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 7), (3, 2, 6)])
def test_flatten_round_trip(shape):
    x = rand(shape, seed=1)
    F_ = int(np.prod(shape[1:]))
    dy = rand((shape[0], F_), seed=2)
    y, dx, grads, model = run_model(Flatten(), x, dy)
    assert model.output_shape == (F_,)
    np.testing.assert_array_equal(y, x.reshape(shape[0], -1))
    np.testing.assert_array_equal(dx, dy.reshape(shape))
    assert grads == {}


def test_conv_flatten_dense_chain_matches_torch():
    conv, dense = Conv2D(4, 3, stride=2), Dense(5)
    model = Model([conv, Flatten(), dense], (2, 7, 7)).build(3)
    x = rand((3, 2, 7, 7), seed=4)
    dy = rand((3, 5), seed=5)
    y = model.forward(x, training=True)
    model.backward(dy)
    xt = t64(x)
    cw, cb = t64(conv.params["weight"], True), t64(conv.params["bias"], True)
    dw, db = t64(dense.params["weight"], True), t64(dense.params["bias"], True)
    yt = F.linear(F.conv2d(xt, cw, cb, stride=2).flatten(1), dw.T, db)
    g = torch_backward(yt, dy, [cw, cb, dw, db])
    close(y, yt, 1e-5, "y")
    for (name, layer), ref in zip([("weight", conv), ("bias", conv), ("weight", dense),
                                   ("bias", dense)], g):
        close(layer.grads[name], ref, 1e-5, name)
    assert np.shares_memory(conv.grads["weight"], model.flat_grads)
