"""``mobilenet_v2`` as a whole against its torch twin (forward, gradients), and its shape."""
import numpy as np
import pytest
import torch

from dtnn.layers import Residual
from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.models import build
from dtnn.models.mobilenet import make_divisible

torch.set_num_threads(1)


def test_make_divisible_follows_the_paper():
    assert [make_divisible(c) for c in (32, 16 * 0.5, 24 * 0.25, 96 * 0.35, 1280)] == \
        [32, 8, 8, 32, 1280]


def test_full_width_layout():
    model = build("mobilenet_v2", (3, 32, 32), 10)
    blocks = [l for l in model.layers if isinstance(l, Residual)]
    assert len(blocks) == 10   # the repeats after each stage's first block: 1+2+3+2+2
    assert 2.2e6 < model.num_params() < 2.3e6   # the paper's 3.4M less the 1000-way head
    assert model.output_shape == (10,)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_mobilenet_v2_equals_its_torch_twin(shape):
    from dtnn.export.torch_twin import torch_twin
    model = build("mobilenet_v2", shape, 10, width=0.25, dropout=0.0, seed=2)
    x = np.random.default_rng(0).standard_normal((8,) + shape).astype(np.float32)
    y = np.arange(8) % 10
    twin = torch_twin(model).double().train()
    logits = model.forward(x, training=True)
    loss_fn = SoftmaxCrossEntropy()
    loss_fn.forward(logits, y)
    model.backward(loss_fn.backward())
    out = twin(torch.tensor(x, dtype=torch.float64))
    torch.nn.functional.cross_entropy(out, torch.tensor(y)).backward()
    np.testing.assert_allclose(logits, out.detach().numpy(), rtol=1e-3, atol=1e-3)
    assert sum(p.numel() for p in twin.parameters()) == model.num_params()
    # layer by layer (twin[i] mirrors layer i): gradient norms and directions
    for i, layer in enumerate(model.layers):
        ours = np.concatenate([g.ravel() for g in layer.grads.values()] or [np.zeros(0)])
        theirs = [p.grad.numpy() for p in twin[i].parameters()]
        if not theirs:
            continue
        theirs = np.concatenate([t.T.ravel() if layer.registry_name == "dense" and t.ndim == 2
                                 else t.ravel() for t in theirs])
        na, nb = np.linalg.norm(ours), np.linalg.norm(theirs)
        cos = float(ours.astype(np.float64) @ theirs / max(na * nb, 1e-30))
        print(i, layer.registry_name, na, nb, cos)
        assert na == pytest.approx(nb, rel=1e-2, abs=1e-6), f"layer {i} gradient norm"
        assert cos > 0.999 or nb < 1e-6, f"layer {i} gradient direction {cos}"
