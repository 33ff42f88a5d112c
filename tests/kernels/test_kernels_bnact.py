"""Compiled BatchNorm/PReLU passes (csrc/bnact.c) against their numpy twins, and the
twins against torch autograd in float64 (an independent oracle)."""
import numpy as np
import pytest

from dtnn._kernels import twins

ext = pytest.importorskip(
    "dtnn._kernels._bnact",
    reason="compiled kernels not built (run `pip install -e .` or "
           "`python setup.py build_ext --inplace`)")

SHAPES = [(4, 3, 25), (1, 1, 1), (2, 5, 1), (3, 16, 49), (64, 8, 196), (2, 70, 9)]


def _data(shape, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + offset).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    C = shape[1]
    return rng, x, dy, rng.standard_normal(C).astype(np.float32)


def rel(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(1e-30, np.abs(b).max()))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("offset", [0.0, 1000.0])   # a large mean must not cancel the var
def test_bn_stats_and_apply_match_twin(shape, offset):
    _, x, _, g = _data(shape, offset=offset)
    mean, var = ext.bn_stats(x)
    tm, tv = twins.bn_stats(x)
    assert rel(mean, tm) < 1e-6
    assert np.abs(var - tv).max() <= 1e-5 * max(1.0, float(tv.max()))
    shift = np.linspace(-1, 1, shape[1]).astype(np.float32)
    assert rel(ext.bn_apply(x, g, shift), twins.bn_apply(x, g, shift)) < 1e-6


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("need_dx", [True, False])
def test_bn_backward_matches_twin(shape, training, need_dx):
    _, x, dy, g = _data(shape, 1)
    mean, var = twins.bn_stats(x)
    inv = (1 / np.sqrt(var + 1e-5)).astype(np.float32)
    got = ext.bn_backward(dy, x, mean, inv, g, training, need_dx)
    ref = twins.bn_backward(dy, x, mean, inv, g, training, need_dx)
    assert (got[0] is None) == (not need_dx)
    if need_dx:      # dx cancels to ~0 on tiny batches: error on the scale of gamma*dy/std
        scale = float(np.abs(dy * (g * inv)[None, :, None]).max())
        assert np.abs(got[0] - ref[0]).max() <= 1e-5 * scale
    assert rel(got[1], ref[1]) < 1e-5 and rel(got[2], ref[2]) < 1e-5


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("need_dx", [True, False])
def test_prelu_matches_twin(shape, need_dx):
    _, x, dy, a = _data(shape, 2)
    x[..., ::3] = 0.0                                    # the kink: x == 0 is "negative"
    assert np.array_equal(ext.prelu_forward(x, a), twins.prelu_forward(x, a))
    dx, da = ext.prelu_backward(dy, x, a, need_dx)
    tdx, tda = twins.prelu_backward(dy, x, a, need_dx)
    assert rel(da, tda) < 1e-5
    assert (dx is None) == (not need_dx)
    if need_dx:
        assert np.array_equal(dx, tdx)


def test_results_do_not_depend_on_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl not installed")
    _, x, dy, g = _data((64, 12, 196), 3)
    outs = []
    for n in (1, 2):
        with threadpoolctl.threadpool_limits(n, user_api="openmp"):
            mean, var = ext.bn_stats(x)
            outs.append((mean, var, *ext.bn_backward(dy, x, mean, var + 1, g, True, True),
                         *ext.prelu_backward(dy, x, g, True)))
    for a, b in zip(*outs):
        assert np.array_equal(a, b)


def test_bad_input_is_a_value_error():
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="float32"):
        ext.bn_stats(x.astype(np.float64))
    with pytest.raises(ValueError, match="3-D"):
        ext.prelu_forward(x[0], np.ones(3, np.float32))
    with pytest.raises(ValueError, match="alpha"):
        ext.prelu_forward(x, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="shape"):
        ext.bn_backward(x, x[:1], *(np.ones(3, np.float32),) * 3, True, True)


def test_twins_match_torch_autograd():
    torch = pytest.importorskip("torch", reason="torch not installed")
    _, x, dy, g = _data((5, 4, 12), 4, offset=3.0)
    beta = np.linspace(-1, 1, 4).astype(np.float32)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    gt = torch.tensor(g, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(beta, dtype=torch.float64, requires_grad=True)
    yt = torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    mean, var = twins.bn_stats(x)
    inv = (1 / np.sqrt(var.astype(np.float64) + 1e-5)).astype(np.float32)
    y = twins.bn_apply(x, g * inv, beta - mean * g * inv)
    assert rel(y, yt.detach().numpy()) < 1e-5
    dx, dgamma, dbeta = twins.bn_backward(dy, x, mean, inv, g, True, True)
    assert rel(dx, xt.grad.numpy()) < 1e-4
    assert rel(dgamma, gt.grad.numpy()) < 1e-5 and rel(dbeta, bt.grad.numpy()) < 1e-6
    xt = torch.tensor(x - 3, dtype=torch.float64, requires_grad=True)
    at = torch.tensor(g, dtype=torch.float64, requires_grad=True)
    yt = torch.nn.functional.prelu(xt, at)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    assert rel(twins.prelu_forward(x - 3, g), yt.detach().numpy()) < 1e-6
    dx, da = twins.prelu_backward(dy, x - 3, g, True)
    assert rel(dx, xt.grad.numpy()) < 1e-6 and rel(da, at.grad.numpy()) < 1e-5


RELU_SHAPES = [(4, 3, 25), (1,), (2, 5), (64, 16, 14, 14), (3, 7, 100003)]


@pytest.mark.parametrize("shape", RELU_SHAPES)
def test_relu_matches_twin(shape):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    x.flat[::7] = 0.0
    x.flat[1::11] = -0.0
    dy = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    y = ext.relu_forward(x)
    assert np.array_equal(y, twins.relu_forward(x))
    assert np.array_equal(ext.relu_backward(dy, y), twins.relu_backward(dy, y))
    x0 = x.copy()
    x.flat[0] = np.nan                        # NaN propagates forward, as np.maximum
    assert np.isnan(ext.relu_forward(x).flat[0])
    x.flat[0] = x0.flat[0]
    ext.relu_backward(dy, ext.relu_forward(x))
    assert np.array_equal(x, x0, equal_nan=True)   # inputs never modified


def test_relu_same_bits_at_1_and_2_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl not installed")
    x = np.random.default_rng(4).standard_normal((8, 64, 32, 32)).astype(np.float32)
    dy = np.random.default_rng(5).standard_normal(x.shape).astype(np.float32)
    out = []
    for n in (1, 2):
        with threadpoolctl.threadpool_limits(n, user_api="openmp"):
            y = ext.relu_forward(x)
            out.append((y, ext.relu_backward(dy, y)))
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])


def test_relu_bad_input_is_a_value_error():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError):
        ext.relu_forward(x.astype(np.float64))
    with pytest.raises(ValueError):
        ext.relu_backward(x, np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError):
        ext.relu_forward([1.0])


def test_relu_layer_matches_torch_autograd():
    torch = pytest.importorskip("torch", reason="torch not installed")
    from dtnn.layers.activation import ReLU
    x = np.random.default_rng(6).standard_normal((4, 8, 9, 9)).astype(np.float32)
    x[:, :, ::3] = 0.0
    x = x[:, :, :, ::-1]                      # non-contiguous input
    dy = np.random.default_rng(7).standard_normal(x.shape).astype(np.float32)
    layer = ReLU()
    layer.build(x.shape[1:], np.random.default_rng(0))
    y = layer.forward(x, training=True)
    dx = layer.backward(dy[..., ::-1][..., ::-1])
    xt = torch.tensor(x.copy(), dtype=torch.float64, requires_grad=True)
    yt = torch.relu(xt)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    assert np.array_equal(y, yt.detach().numpy().astype(np.float32))
    assert np.array_equal(dx, xt.grad.numpy().astype(np.float32))
