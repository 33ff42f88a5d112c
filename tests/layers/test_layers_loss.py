"""SoftmaxCrossEntropy against torch.nn.functional.cross_entropy."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dtnn.errors import ConfigError, DataError
from dtnn.layers import SoftmaxCrossEntropy

from ._helpers import close, rand, t64


def _torch(logits, labels, smoothing):
    zt = t64(logits, True)
    loss = F.cross_entropy(zt, torch.tensor(labels), label_smoothing=smoothing)
    (g,) = torch.autograd.grad(loss, [zt])
    return loss.item(), g.numpy(), torch.softmax(zt.detach(), 1).numpy()


@pytest.mark.parametrize("N, K", [(1, 2), (8, 10), (33, 7), (5, 1000)])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_matches_torch(N, K, smoothing, scale):
    logits = rand((N, K), seed=N + K, scale=scale)
    labels = np.random.default_rng(1).integers(0, K, N)
    loss_fn = SoftmaxCrossEntropy(label_smoothing=smoothing)
    loss = loss_fn.forward(logits, labels)
    grad = loss_fn.backward()
    ref_loss, ref_grad, ref_p = _torch(logits, labels, smoothing)
    assert isinstance(loss, float) and np.isfinite(loss)
    assert grad.dtype == np.float32 and grad.shape == (N, K)
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5, atol=1e-5 * max(1.0, scale / 100))
    close(grad, ref_grad, 1e-5, "dlogits")
    close(loss_fn.probabilities(), ref_p, 1e-5, "probabilities")


def test_huge_logits_have_no_nan():
    logits = np.array([[1e4, 0, -1e4], [-1e4, -1e4, 1e4]], np.float32)
    loss_fn = SoftmaxCrossEntropy()
    assert loss_fn.forward(logits, np.array([0, 2])) == pytest.approx(0.0, abs=1e-6)
    assert loss_fn.forward(logits, np.array([1, 0])) == pytest.approx(1.5e4, rel=1e-6)
    assert np.isfinite(loss_fn.backward()).all()


def test_gradient_rows_sum_to_zero():
    logits = rand((6, 5), seed=2)
    loss_fn = SoftmaxCrossEntropy(label_smoothing=0.2)
    loss_fn.forward(logits, np.arange(6) % 5)
    np.testing.assert_allclose(loss_fn.backward().sum(axis=1), 0, atol=1e-7)


def test_bad_labels():
    loss_fn = SoftmaxCrossEntropy()
    with pytest.raises(DataError, match="labels"):
        loss_fn.forward(np.zeros((2, 3), np.float32), np.array([0, 3]))
    with pytest.raises(ValueError):
        loss_fn.forward(np.zeros((2, 3), np.float32), np.array([0.0, 1.0]))
    with pytest.raises(ValueError):
        loss_fn.forward(np.zeros((2, 3), np.float32), np.array([0]))
    with pytest.raises(ConfigError):
        SoftmaxCrossEntropy(label_smoothing=1.5)
