"""Dropout: statistics of the mask, scaling, per-sample masks, backward, eval identity."""
import numpy as np
import pytest

from dtnn.errors import ConfigError
from dtnn.layers import Dense, Dropout
from dtnn.models.model import Model

from ._helpers import rand, run_model


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_keep_rate_scaling_and_backward(rate):
    shape = (6, 4, 25, 20)            # 2000 elements per sample, 12000 in all
    x = np.ones(shape, np.float32)
    dy = rand(shape, seed=3)
    y, dx, _, _ = run_model(Dropout(rate), x, dy, seed=11)
    assert y.dtype == np.float32 and y.shape == shape
    scale = np.float32(1.0 / (1.0 - rate))
    kept = y != 0
    # survivors are scaled by exactly 1/(1-rate), the rest are 0
    np.testing.assert_array_equal(y[kept], scale)
    # keep fraction within 5 sigma of the binomial mean
    n = y.size
    p = 1.0 - rate
    assert abs(kept.sum() - n * p) < 5 * np.sqrt(n * p * (1 - p))
    # every sample has its own mask
    masks = kept.reshape(shape[0], -1)
    assert all(not np.array_equal(masks[0], masks[i]) for i in range(1, shape[0]))
    # backward applies the very same mask and scale
    np.testing.assert_array_equal(dx, np.where(kept, dy * scale, 0).astype(np.float32))


def test_x_scaled_by_mask():
    x = rand((3, 50), seed=1)
    y, _, _, _ = run_model(Dropout(0.5), x, None)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 2 * x[kept], rtol=1e-7)


def test_eval_is_identity_and_draws_nothing():
    layer = Dropout(0.5)
    model = Model([layer], (10,)).build(0)
    state = layer.rng.bit_generator.state
    x = rand((4, 10))
    assert model.forward(x, training=False) is x
    assert layer.rng.bit_generator.state == state
    assert layer.backward(x) is None            # first layer: no input grad


def test_masks_change_between_steps_and_follow_the_seed():
    def masks(seed):
        layer = Dropout(0.5)
        model = Model([Dense(8), layer], (4,)).build(seed)
        x = np.ones((2, 4), np.float32)
        model.layers[0].params["weight"][...] = 1.0
        return [model.forward(x, training=True) != 0 for _ in range(2)]

    a1, a2 = masks(0)
    b1, b2 = masks(0)
    c1, _ = masks(1)
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)
    assert not np.array_equal(a1, c1)


def test_rate_zero_is_identity():
    x = rand((3, 5))
    dy = rand((3, 5), seed=1)
    y, dx, _, _ = run_model(Dropout(0.0), x, dy)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(dx, dy)


def test_uses_rng_flag_and_rng_state_checkpoint():
    model = Model([Dense(3), Dropout(0.3)], (5,)).build(0)
    assert Dropout.uses_rng is True
    assert list(model.rng_states()) == ["1"]


@pytest.mark.parametrize("rate", [-0.1, 1.0, 2])
def test_bad_rate(rate):
    with pytest.raises(ConfigError):
        Dropout(rate)
