"""Max/avg/global pooling against torch autograd."""
import numpy as np
import pytest
import torch.nn.functional as F

from dtnn.errors import ConfigError
from dtnn.layers import AvgPool2D, GlobalAvgPool, GlobalMaxPool, MaxPool2D
from dtnn.models.model import Model

from ._helpers import close, rand, run_model, t64, torch_backward

# (N, C, H, W, kernel, stride, padding)
WINDOW_CASES = [
    (2, 3, 8, 8, 2, None, 0),            # tiles
    (1, 2, 7, 9, 3, 2, 1),               # overlapping, padded, batch 1
    (3, 4, 9, 9, 3, 1, 0),               # stride 1, heavy overlap
    (2, 2, 11, 10, [3, 2], [2, 3], [1, 1]),
    (2, 3, 7, 7, 2, None, 0),            # ragged: last row/col dropped
    (2, 1, 6, 6, 6, None, 0),            # whole image
    (1, 2, 5, 6, [2, 3], [1, 2], [1, 0]),
]


@pytest.mark.parametrize("case", WINDOW_CASES, ids=[f"c{i}" for i in range(len(WINDOW_CASES))])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_window_pool_matches_torch(case, kind):
    N, C, H, W, k, s, p = case
    cls = MaxPool2D if kind == "max" else AvgPool2D
    x = rand((N, C, H, W), seed=3)
    xt = t64(x, True)
    fn = F.max_pool2d if kind == "max" else F.avg_pool2d
    yt = fn(xt, k, stride=s if s is not None else k, padding=p)
    dy = rand(tuple(yt.shape), seed=4)
    y, dx, grads, model = run_model(cls(k, stride=s, padding=p), x, dy)
    (gx,) = torch_backward(yt, dy, [xt])
    assert model.output_shape == tuple(yt.shape[1:])
    assert grads == {}
    close(y, yt, 1e-6, "y")
    close(dx, gx, 1e-6, "dx")
    assert y.dtype == np.float32 and dx.dtype == np.float32


def test_maxpool_padding_never_wins():
    x = -np.abs(rand((1, 1, 4, 4), seed=0)) - 1.0   # all negative: padded zeros would win
    y, _, _, _ = run_model(MaxPool2D(3, stride=1, padding=1), x, None)
    yt = F.max_pool2d(t64(x), 3, stride=1, padding=1)
    close(y, yt, 0, "y")
    assert (y < 0).all()


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 1, 1, 1), (3, 6, 7, 7)])
def test_global_avg_pool(shape):
    x = rand(shape, seed=1)
    dy = rand(shape[:2], seed=2)
    y, dx, _, model = run_model(GlobalAvgPool(), x, dy)
    xt = t64(x, True)
    yt = xt.mean(dim=(2, 3))
    (gx,) = torch_backward(yt, dy, [xt])
    assert model.output_shape == (shape[1],)
    close(y, yt, 1e-6, "y")
    close(dx, gx, 1e-6, "dx")


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 1, 1, 1), (3, 6, 7, 7)])
def test_global_max_pool(shape):
    x = rand(shape, seed=1)
    dy = rand(shape[:2], seed=2)
    y, dx, _, model = run_model(GlobalMaxPool(), x, dy)
    xt = t64(x, True)
    yt = F.adaptive_max_pool2d(xt, 1).flatten(1)
    (gx,) = torch_backward(yt, dy, [xt])
    assert model.output_shape == (shape[1],)
    close(y, yt, 0, "y")
    close(dx, gx, 0, "dx")


@pytest.mark.parametrize("cls, kwargs, shape, match", [
    (MaxPool2D, dict(kernel_size=3, padding=2), (1, 8, 8), "half"),
    (AvgPool2D, dict(kernel_size=5), (1, 4, 4), "output size"),
    (MaxPool2D, dict(kernel_size=2), (4, 4), "3-D"),
    (GlobalAvgPool, dict(), (10,), "3-D"),
    (GlobalMaxPool, dict(), (3, 4), "3-D"),
    (MaxPool2D, dict(kernel_size=2, stride=0), (1, 4, 4), "stride"),
])
def test_pool_config_errors(cls, kwargs, shape, match):
    with pytest.raises(ConfigError, match=match):
        Model([cls(**kwargs)], shape).build(0)


def test_first_layer_pool_returns_none():
    for layer in (MaxPool2D(2), AvgPool2D(2, 1, 1), AvgPool2D(2), GlobalAvgPool(), GlobalMaxPool()):
        model = Model([layer], (2, 4, 4)).build(0)
        y = model.forward(rand((2, 2, 4, 4)), training=True)
        assert layer.backward(np.ones_like(y)) is None
