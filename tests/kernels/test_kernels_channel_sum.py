"""channel_sum (csrc/bnact.c), a convolution's bias gradient: the compiled kernel
against its numpy twin and a float64 oracle, at 1 and 2 threads; its argument checks;
and every convolution variant's bias gradient against torch autograd."""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from dtnn._kernels import twins

ext = pytest.importorskip(
    "dtnn._kernels._bnact",
    reason="compiled kernels not built (run `pip install -e .`)")

SHAPES = [(1, 1, 1), (4, 3, 25), (64, 64, 784), (2, 70, 9), (3, 1, 5000), (0, 4, 3)]


@pytest.mark.parametrize("shape", SHAPES)
def test_channel_sum_matches_float64_and_twin(shape):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) + 0.25).astype(np.float32)
    oracle = x.astype(np.float64).sum(axis=(0, 2))
    tol = 1e-6 * max(1.0, float(np.abs(x).sum(axis=(0, 2)).max(initial=0.0)))
    got = {}
    for threads in (1, 2):
        with threadpool_limits(threads, user_api="openmp"):
            got[threads] = ext.channel_sum(x)
    twin = twins.channel_sum(x)
    assert got[1].dtype == np.float32 and got[1].shape == (shape[1],)
    np.testing.assert_array_equal(got[1], got[2])      # no cross-thread reduction
    np.testing.assert_allclose(got[1], oracle, rtol=0, atol=tol)
    np.testing.assert_allclose(twin, oracle, rtol=0, atol=tol)


def test_channel_sum_writes_into_out():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    out = np.full(3, np.nan, np.float32)
    assert ext.channel_sum(x, out=out) is out
    np.testing.assert_array_equal(out, [60.0, 92.0, 124.0])


@pytest.mark.parametrize("bad, match", [
    (lambda: ext.channel_sum(np.zeros((2, 3), np.float32)), "3-D"),
    (lambda: ext.channel_sum(np.zeros((2, 3, 4), np.float64)), "float32"),
    (lambda: ext.channel_sum(np.zeros((2, 3, 4), np.float32), out=np.zeros(4, np.float32)),
     "shape"),
])
def test_channel_sum_rejects_bad_arguments(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


@pytest.mark.parametrize("algorithm", ["im2col", "implicit", "direct", "livetaps", "winograd"])
def test_conv_bias_gradient_matches_torch(algorithm):
    torch = pytest.importorskip("torch")
    from dtnn.conv import CONV_ALGORITHMS, ConvGeometry
    rng = np.random.default_rng(2)
    # 1x1 images with padding 1 give livetaps dead taps to drop; 3x3 suits the rest
    hw = 1 if algorithm == "livetaps" else 6
    g = ConvGeometry(N=5, C=3, H=hw, W=hw, K=7, R=3, S=3, stride=(1, 1), padding=(1, 1))
    x = rng.standard_normal((5, 3, hw, hw)).astype(np.float32)
    w = rng.standard_normal((7, 3, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((5, 7, hw, hw)).astype(np.float32)
    alg = CONV_ALGORITHMS.get(algorithm)()
    dw, db = np.empty_like(w), np.empty(7, np.float32)
    alg.backward(dy, x, w, g, False, dw, db)
    xt = torch.tensor(x, dtype=torch.float64)
    bt = torch.zeros(7, dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.conv2d(xt, torch.tensor(w, dtype=torch.float64), bt, padding=1)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-5, atol=1e-5)
