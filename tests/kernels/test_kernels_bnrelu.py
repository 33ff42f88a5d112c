"""BatchNorm + ReLU fused (csrc/bnact.c: bn_apply_relu, bn_relu_backward): the compiled
kernels against their numpy twins and against the unfused kernels one after the other
(same bits); the twins against torch autograd in float64; and a model whose batchnorm
+ relu pairs run fused against the same model run layer by layer."""
import numpy as np
import pytest

from dtnn._kernels import twins

ext = pytest.importorskip(
    "dtnn._kernels._bnact",
    reason="compiled kernels not built (run `pip install -e .` or "
           "`python setup.py build_ext --inplace`)")

SHAPES = [(4, 3, 25), (1, 1, 1), (2, 5, 1), (3, 16, 49), (64, 8, 196), (2, 70, 9)]


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    C = shape[1]
    gamma = rng.standard_normal(C).astype(np.float32)
    beta = rng.standard_normal(C).astype(np.float32)
    return x, dy, gamma, beta


def _affine(x, gamma, beta, eps=1e-5):
    mean, var = ext.bn_stats(x)
    inv_std = (1.0 / np.sqrt(var + np.float32(eps))).astype(np.float32)
    scale = gamma * inv_std
    return mean, inv_std, scale, beta - mean * scale


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("need_dx", [True, False])
def test_fused_equals_unfused_kernels_and_twin(shape, training, need_dx):
    x, dy, gamma, beta = _data(shape)
    mean, inv_std, scale, shift = _affine(x, gamma, beta)
    y = ext.bn_apply_relu(x, scale, shift)
    assert np.array_equal(y, ext.relu_forward(ext.bn_apply(x, scale, shift)))
    assert np.allclose(y, twins.bn_apply_relu(x, scale, shift), rtol=1e-6, atol=1e-6)
    got = ext.bn_relu_backward(dy, y, x, mean, inv_std, gamma, training, need_dx)
    two = ext.bn_backward(ext.relu_backward(dy, y), x, mean, inv_std, gamma, training,
                          need_dx)
    ref = twins.bn_relu_backward(dy, y, x, mean, inv_std, gamma, training, need_dx)
    for a, b, r in zip(got, two, ref):
        if r is None:
            assert a is None and b is None
            continue
        assert np.array_equal(a, b)                      # same bits as the two kernels
        scale_r = max(1.0, float(np.abs(r).max()))
        assert np.abs(a.astype(np.float64) - r).max() <= 2e-5 * scale_r


def test_nan_propagates_and_inputs_untouched():
    x, dy, gamma, beta = _data((2, 3, 16))
    x[0, 1, 3] = np.nan
    x0, dy0 = x.copy(), dy.copy()
    y = ext.bn_apply_relu(x, np.ones(3, np.float32), np.zeros(3, np.float32))
    assert np.isnan(y[0, 1, 3]) and (np.nan_to_num(y) >= 0).all()
    ext.bn_relu_backward(dy, y, x, np.zeros(3, np.float32), np.ones(3, np.float32), gamma,
                         True, True)
    assert np.array_equal(x, x0, equal_nan=True) and np.array_equal(dy, dy0)


def test_same_bits_at_1_and_2_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl not installed")
    x, dy, gamma, beta = _data((16, 32, 196), seed=3)
    mean, inv_std, scale, shift = _affine(x, gamma, beta)
    out = []
    for n in (1, 2):
        with threadpoolctl.threadpool_limits(n, user_api="openmp"):
            y = ext.bn_apply_relu(x, scale, shift)
            out.append((y,) + ext.bn_relu_backward(dy, y, x, mean, inv_std, gamma, True,
                                                   True))
    assert all(np.array_equal(a, b) for a, b in zip(*out))


def test_bad_input_is_a_value_error():
    x = np.zeros((2, 3, 4), np.float32)
    v = np.zeros(3, np.float32)
    with pytest.raises(ValueError):
        ext.bn_apply_relu(x.astype(np.float64), v, v)
    with pytest.raises(ValueError):
        ext.bn_apply_relu(x, np.zeros(2, np.float32), v)
    with pytest.raises(ValueError):
        ext.bn_relu_backward(x, np.zeros((2, 3, 5), np.float32), x, v, v, v, True, True)


def test_twins_match_torch_autograd():
    torch = pytest.importorskip("torch", reason="torch not installed")
    x, dy, gamma, beta = _data((8, 6, 20), seed=7)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    gt = torch.tensor(gamma, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(beta, dtype=torch.float64, requires_grad=True)
    yt = torch.relu(torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True,
                                                   eps=1e-5))
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    mean, var = twins.bn_stats(x)
    inv_std = (1.0 / np.sqrt(var.astype(np.float64) + 1e-5)).astype(np.float32)
    scale = gamma * inv_std
    y = twins.bn_apply_relu(x, scale, beta - mean * scale)
    assert np.abs(y - yt.detach().numpy()).max() < 1e-4
    dx, dgamma, dbeta = twins.bn_relu_backward(dy, y, x, mean, inv_std, gamma, True, True)
    assert np.abs(dx - xt.grad.numpy()).max() < 1e-4 * max(1, np.abs(xt.grad.numpy()).max())
    assert np.abs(dgamma - gt.grad.numpy()).max() < 1e-4 * max(1, np.abs(gt.grad.numpy()).max())
    assert np.abs(dbeta - bt.grad.numpy()).max() < 1e-4 * max(1, np.abs(bt.grad.numpy()).max())


def _train_step(fuse, hook_calls=None):
    from dtnn.layers.loss import SoftmaxCrossEntropy
    from dtnn.models import build_model
    m = build_model("vgg11_bn", (1, 28, 28), 10, seed=0, width=0.25, conv_algorithm="im2col")
    m.fuse_bn_relu = fuse
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 4)
    loss = SoftmaxCrossEntropy()
    out = m.forward(x, training=True)
    m.fused_seen = sorted(m._fused_bn_relu + m._fused_bn_relu_pool)
    m.fused3_seen = list(m._fused_bn_relu_pool)
    loss.forward(out, y)
    m.backward(loss.backward(),
               on_grads_ready=None if hook_calls is None else hook_calls.append)
    bufs = [b.copy() for layer in m.layers for b in layer.buffers.values()]
    return m, out, m.flat_grads.copy(), bufs


def test_model_runs_bn_relu_fused_with_the_same_results():
    calls_f, calls_u = [], []
    mf, out_f, g_f, b_f = _train_step(True, calls_f)
    mu, out_u, g_u, b_u = _train_step(False, calls_u)
    assert np.array_equal(out_f, out_u) and np.array_equal(g_f, g_u)
    assert all(np.array_equal(a, b) for a, b in zip(b_f, b_u))
    # every layer's gradient-ready hook still fires once, in reverse order
    assert calls_f == calls_u == list(reversed(range(len(mf.layers))))
    # and the fusion did happen: every batchnorm on images (vgg: each followed by a relu)
    from dtnn.layers.batchnorm import BatchNorm
    bn = [i for i, layer in enumerate(mf.layers)
          if isinstance(layer, BatchNorm) and layer.input_shape[1] * layer.input_shape[2] > 1]
    assert bn and mf.fused_seen == bn and mu.fused_seen == []
    # the ones followed by relu + maxpool2d(2) ran as one pass with the pool
    assert mf.fused3_seen == [1, 5, 12, 19] and mu.fused3_seen == []
