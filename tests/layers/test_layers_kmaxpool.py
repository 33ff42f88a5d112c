"""k-max pooling against a plain numpy reference and torch (topk + sorted indices)."""
import math

import numpy as np
import pytest

from dtnn.errors import ConfigError
from dtnn.layers import KMaxPool
from dtnn.models.model import Model

from ._helpers import close, rand, run_model, t64, torch_backward


def reference(x, k, dy):
    N, C = x.shape[:2]
    flat = x.reshape(N, C, -1)
    y = np.empty((N, C, k), np.float32)
    dx = np.zeros_like(flat)
    for n in range(N):
        for c in range(C):
            keep = np.sort(np.argsort(-flat[n, c], kind="stable")[:k])
            y[n, c] = flat[n, c, keep]
            dx[n, c, keep] = dy[n, c]
    return y, dx.reshape(x.shape)


@pytest.mark.parametrize("shape, k", [
    ((2, 3, 4, 5), 4), ((1, 2, 7), 3), ((3, 4, 1, 9), 9), ((2, 1, 3, 3), 1), ((4, 5, 30), 7),
])
def test_fixed_k_matches_reference(shape, k):
    x = rand(shape, seed=1)
    dy = rand((shape[0], shape[1], k), seed=2)
    y, dx, grads, model = run_model(KMaxPool(k=k), x, dy)
    ry, rdx = reference(x, k, dy)
    assert model.output_shape == (shape[1], k)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(dx, rdx)
    # the same thing expressed with torch autograd
    xt = t64(x, True)
    flat = xt.reshape(shape[0], shape[1], -1)
    idx = flat.topk(k, dim=2).indices.sort(dim=2).values
    yt = flat.gather(2, idx)
    (gx,) = torch_backward(yt, dy, [xt])
    close(y, yt, 0, "y")
    close(dx, gx, 0, "dx")


def test_original_order_is_kept():
    x = np.array([[[5, 1, 9, 3, 7, 2]]], np.float32)
    y, _, _, _ = run_model(KMaxPool(k=3), x, None)
    np.testing.assert_array_equal(y, [[[5, 9, 7]]])


@pytest.mark.parametrize("layer, num_layers, k_top, L", [
    (1, 3, 3, 10), (2, 3, 3, 10), (3, 3, 3, 10), (1, 2, 2, 25), (1, 4, 5, 6),
])
def test_dynamic_k(layer, num_layers, k_top, L):
    k = max(k_top, math.ceil((num_layers - layer) / num_layers * L))
    x = rand((2, 3, L), seed=layer)
    dy = rand((2, 3, k), seed=9)
    pool = KMaxPool(k_top=k_top, layer=layer, num_layers=num_layers)
    y, dx, _, model = run_model(pool, x, dy)
    assert model.output_shape == (3, k)
    ry, rdx = reference(x, k, dy)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(dx, rdx)


def test_dynamic_k_follows_batch_length():
    pool = KMaxPool(k_top=2, layer=1, num_layers=2)
    Model([pool], (3, 10)).build(0)
    assert pool.k_for(10) == 5 and pool.k_for(20) == 10 and pool.k_for(3) == 2
    y = pool.forward(rand((2, 3, 20)), training=True)
    assert y.shape == (2, 3, 10)


@pytest.mark.parametrize("kwargs", [
    dict(), dict(k=0), dict(k=2, k_top=1), dict(k_top=2, layer=1),
    dict(k_top=2, layer=4, num_layers=3), dict(k_top=0, layer=1, num_layers=3),
])
def test_bad_configs(kwargs):
    with pytest.raises(ConfigError):
        KMaxPool(**kwargs)


def test_k_larger_than_map_is_an_error():
    with pytest.raises(ConfigError, match="exceeds"):
        Model([KMaxPool(k=10)], (2, 3, 3)).build(0)
    with pytest.raises(ConfigError, match="exceeds"):
        Model([KMaxPool(k_top=5, layer=3, num_layers=3)], (2, 4)).build(0)
