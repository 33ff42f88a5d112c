"""BatchNorm against torch's batch_norm (train and eval, running statistics)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dtnn.errors import ConfigError
from dtnn.layers import BatchNorm
from dtnn.models.model import Model

from ._helpers import Probe, close, rand, run_model, t64, torch_backward


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (1, 2, 4, 4), (16, 7), (2, 5)])
@pytest.mark.parametrize("momentum, eps", [(0.1, 1e-5), (0.3, 1e-3)])
def test_batchnorm_training_steps_match_torch(shape, momentum, eps):
    C = shape[1]
    layer = BatchNorm(momentum=momentum, eps=eps)
    probe = Probe()
    model = Model([probe, layer], shape[1:]).build(0)
    gamma = rand((C,), seed=1, scale=0.5) + 1.0
    beta = rand((C,), seed=2)
    layer.params["gamma"][...] = gamma
    layer.params["beta"][...] = beta
    rm, rv = torch.zeros(C, dtype=torch.float64), torch.ones(C, dtype=torch.float64)
    for step in range(3):
        x = rand(shape, seed=10 + step, scale=2.0) + 3.0 * step
        dy = rand(shape, seed=20 + step)
        y = model.forward(x, training=True)
        model.backward(dy)
        xt, gt, bt = t64(x, True), t64(gamma, True), t64(beta, True)
        yt = F.batch_norm(xt, rm, rv, gt, bt, training=True, momentum=momentum, eps=eps)
        gx, gg, gb = torch_backward(yt, dy, [xt, gt, bt])
        close(y, yt, 2e-5, f"y step {step}")
        close(probe.dx, gx, 2e-5, f"dx step {step}")
        close(layer.grads["gamma"], gg, 2e-5, "dgamma")
        close(layer.grads["beta"], gb, 2e-5, "dbeta")
        close(layer.buffers["running_mean"], rm, 2e-5, "running_mean")
        close(layer.buffers["running_var"], rv, 2e-5, "running_var")
    assert np.shares_memory(layer.grads["gamma"], model.flat_grads)
    assert model.buffers()["1/running_mean"] is layer.buffers["running_mean"]


@pytest.mark.parametrize("shape", [(3, 4, 5, 5), (6, 3)])
def test_batchnorm_eval_uses_running_stats(shape):
    C = shape[1]
    layer = BatchNorm()
    mean = rand((C,), seed=3)
    var = np.abs(rand((C,), seed=4)) + 0.5
    gamma, beta = rand((C,), seed=5), rand((C,), seed=6)

    def setup(l):
        l.buffers["running_mean"][...] = mean
        l.buffers["running_var"][...] = var
        l.params["gamma"][...] = gamma
        l.params["beta"][...] = beta

    x = rand(shape, seed=7)
    dy = rand(shape, seed=8)
    y, dx, grads, _ = run_model(layer, x, dy, training=False, setup=setup)
    xt, gt, bt = t64(x, True), t64(gamma, True), t64(beta, True)
    yt = F.batch_norm(xt, t64(mean), t64(var), gt, bt, training=False, eps=1e-5)
    gx, gg, gb = torch_backward(yt, dy, [xt, gt, bt])
    close(y, yt, 1e-5, "y")
    close(dx, gx, 1e-5, "dx")
    close(grads["gamma"], gg, 1e-5, "dgamma")
    close(grads["beta"], gb, 1e-5, "dbeta")
    # inference must not touch the running statistics
    np.testing.assert_array_equal(layer.buffers["running_mean"], mean)
    np.testing.assert_array_equal(layer.buffers["running_var"], var)


def test_batchnorm_params_and_buffers():
    layer = BatchNorm()
    Model([layer], (3, 2, 2)).build(0)
    assert set(layer.params) == {"gamma", "beta"} and layer.decay_params == ()
    np.testing.assert_array_equal(layer.params["gamma"], 1)
    np.testing.assert_array_equal(layer.buffers["running_var"], 1)
    np.testing.assert_array_equal(layer.buffers["running_mean"], 0)


def test_batchnorm_large_offset_is_stable():
    """Two-pass statistics: a big common offset does not destroy the variance."""
    layer = BatchNorm()
    x = rand((8, 2, 16, 16), seed=1) + 1000.0
    y, _, _, _ = run_model(layer, x, None)
    yt = F.batch_norm(t64(x), None, None, training=True)
    close(y, yt, 5e-4, "y")


@pytest.mark.parametrize("kwargs", [dict(momentum=1.5), dict(eps=0.0)])
def test_batchnorm_bad_config(kwargs):
    with pytest.raises(ConfigError):
        BatchNorm(**kwargs)


def test_batchnorm_rank_error():
    with pytest.raises(ConfigError, match="batchnorm"):
        Model([BatchNorm()], (3, 4)).build(0)
