"""BatchNorm + ReLU + 2x2 max pooling fused (csrc/bnact.c: bn_apply_relu_pool2,
bn_relu_pool2_backward): the compiled kernels against the unfused compiled kernels one
after the other (same bits: the model's fused path must not change a result), against
their numpy twins, and the twins against torch autograd in float64."""
import numpy as np
import pytest

from dtnn._kernels import twins

ext = pytest.importorskip(
    "dtnn._kernels._bnact",
    reason="compiled kernels not built (run `pip install -e .` or "
           "`python setup.py build_ext --inplace`)")
pool = pytest.importorskip("dtnn._kernels._pool", reason="compiled kernels not built")

# odd sizes (an uncovered last row / column), 2x2 and 2x3 maps, rows that are not a
# multiple of the 16 sum lanes, one image, many channels
SHAPES = [(4, 3, 6, 6), (3, 5, 7, 9), (2, 17, 5, 4), (3, 2, 2, 3), (1, 4, 14, 14),
          (8, 40, 3, 3), (16, 8, 28, 28)]


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    N, C, H, W = shape
    x = (rng.standard_normal(shape) * 2 + 0.3).astype(np.float32)
    x[0, 0, :2, :2] = -5.0                  # a window all below zero after the map
    x[-1, -1, :2, :2] = 1.25                # ties inside a window
    gamma = rng.standard_normal(C).astype(np.float32)
    beta = rng.standard_normal(C).astype(np.float32)
    dy = rng.standard_normal((N, C, H // 2, W // 2)).astype(np.float32)
    mean, var = ext.bn_stats(x.reshape(N, C, H * W))
    inv_std = (1.0 / np.sqrt(var + np.float32(1e-5))).astype(np.float32)
    scale = gamma * inv_std
    return x, dy, gamma, mean, inv_std, scale, beta - mean * scale


def _unfused(x, dy, gamma, mean, inv_std, scale, shift, need_dx):
    N, C, H, W = x.shape
    r = ext.bn_apply_relu(x.reshape(N, C, H * W), scale, shift)
    y, arg = pool.maxpool_forward(r.reshape(x.shape), 2, 2, 2, 2, 0, 0)
    g = pool.maxpool_backward(dy, arg, H, W).reshape(N, C, H * W)
    back = ext.bn_relu_backward(g, r, x.reshape(N, C, H * W), mean, inv_std, gamma, True,
                                need_dx)
    return (y, arg) + back


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("need_dx", [True, False])
def test_fused_is_the_unfused_kernels_bit_for_bit_and_matches_the_twin(shape, need_dx):
    x, dy, gamma, mean, inv_std, scale, shift = _data(shape)
    x0, dy0 = x.copy(), dy.copy()
    y, arg = ext.bn_apply_relu_pool2(x, scale, shift)
    dx, dgamma, dbeta = ext.bn_relu_pool2_backward(dy, y, arg, x, mean, inv_std, gamma,
                                                   need_dx)
    uy, uarg, udx, udgamma, udbeta = _unfused(x, dy, gamma, mean, inv_std, scale, shift,
                                              need_dx)
    assert np.array_equal(y, uy) and np.array_equal(arg, uarg)
    assert np.array_equal(dgamma, udgamma) and np.array_equal(dbeta, udbeta)
    assert (dx is None and udx is None) or np.array_equal(dx.reshape(-1), udx.reshape(-1))
    assert np.array_equal(x, x0) and np.array_equal(dy, dy0)
    ty, targ = twins.bn_apply_relu_pool2(x, scale, shift)
    np.testing.assert_allclose(y, ty, rtol=1e-6, atol=1e-6)
    tdx, tdgamma, tdbeta = twins.bn_relu_pool2_backward(dy, ty, targ, x, mean, inv_std,
                                                        gamma, need_dx)
    tol = lambda ref: 1e-5 * max(1.0, float(np.abs(ref).max()))  # noqa: E731
    assert np.abs(dgamma - tdgamma).max() < tol(tdgamma)
    assert np.abs(dbeta - tdbeta).max() < tol(tdbeta)
    if need_dx:
        assert np.abs(dx - tdx).max() < tol(tdx)


def test_same_bits_at_1_and_2_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl not installed")
    x, dy, gamma, mean, inv_std, scale, shift = _data((16, 32, 14, 14), seed=3)
    out = []
    for n in (1, 2):
        with threadpoolctl.threadpool_limits(n, user_api="openmp"):
            y, arg = ext.bn_apply_relu_pool2(x, scale, shift)
            out.append((y, arg) + ext.bn_relu_pool2_backward(dy, y, arg, x, mean, inv_std,
                                                             gamma, True))
    assert all(np.array_equal(a, b) for a, b in zip(*out))


def test_bad_input_is_a_value_error():
    x = np.zeros((2, 3, 4, 4), np.float32)
    v = np.zeros(3, np.float32)
    with pytest.raises(ValueError):
        ext.bn_apply_relu_pool2(x[:, :, :1], v, v)          # no 2x2 window
    with pytest.raises(ValueError):
        ext.bn_apply_relu_pool2(x, np.zeros(2, np.float32), v)
    y, arg = ext.bn_apply_relu_pool2(x, v, v)
    with pytest.raises(ValueError):
        ext.bn_relu_pool2_backward(y, y, arg.astype(np.int64), x, v, v, v, True)
    with pytest.raises(ValueError):
        ext.bn_relu_pool2_backward(y[:, :, :1], y, arg, x, v, v, v, True)


def test_twins_match_torch_autograd():
    torch = pytest.importorskip("torch", reason="torch not installed")
    x, dy, gamma, mean, inv_std, scale, shift = _data((4, 3, 7, 6), seed=5)
    beta = shift + mean * scale
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    gt = torch.tensor(gamma, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(beta, dtype=torch.float64, requires_grad=True)
    F = torch.nn.functional
    yt = F.max_pool2d(torch.relu(F.batch_norm(xt, None, None, gt, bt, training=True,
                                              eps=1e-5)), 2)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    y, arg = twins.bn_apply_relu_pool2(x, scale, shift)
    assert np.abs(y - yt.detach().numpy()).max() < 1e-4
    dx, dgamma, dbeta = twins.bn_relu_pool2_backward(dy, y, arg, x, mean, inv_std, gamma,
                                                     True)
    for ours, ref in ((dx, xt.grad), (dgamma, gt.grad), (dbeta, bt.grad)):
        ref = ref.numpy()
        assert np.abs(ours - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())
