"""The torch twin computes what the dtnn model computes, for every layer type."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dtnn.errors import ConfigError  # noqa: E402
from dtnn.export.torch_twin import copy_back, torch_twin  # noqa: E402

from ._models import all_followers, gap_model, global_pools, kmax_model, zoo  # noqa: E402

MODELS = [all_followers, global_pools, gap_model, kmax_model,
          lambda: zoo("cnet"), lambda: zoo("vgg11_bn"), lambda: zoo("lenet")]


@pytest.mark.parametrize("factory", MODELS)
def test_twin_forward_matches(factory):
    model = factory()
    for i, layer in enumerate(model.layers):   # non-trivial BN statistics and slopes
        if layer.registry_name == "batchnorm":
            rng = np.random.default_rng(i)
            layer.buffers["running_mean"][:] = rng.standard_normal(layer.input_shape[0])
            layer.buffers["running_var"][:] = rng.uniform(0.5, 2, layer.input_shape[0])
            layer.params["gamma"][:] = rng.uniform(0.5, 1.5, layer.input_shape[0])
    x = np.random.default_rng(1).standard_normal((3,) + model.input_shape).astype(np.float32)
    net = torch_twin(model).eval()
    with torch.no_grad():
        ours, theirs = model.forward(x), net(torch.from_numpy(x)).numpy()
    assert theirs.shape == ours.shape
    np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-4 * np.abs(ours).max())


def test_copy_back_round_trip():
    model = all_followers()
    net = torch_twin(model)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.5)
        net[1].running_var.mul_(3.0)
    copy_back(net, model)
    np.testing.assert_allclose(model.layers[0].params["weight"],
                               net[0].weight.detach().numpy())
    np.testing.assert_allclose(model.layers[9].params["weight"],
                               net[9].weight.detach().numpy().T)
    np.testing.assert_allclose(model.layers[1].buffers["running_var"],
                               net[1].running_var.numpy())


def test_unknown_layer_is_a_config_error():
    model = gap_model()
    model.layers[2].registry_name = "mystery"
    with pytest.raises(ConfigError, match="layer 2 \\(mystery\\) has no torch twin"):
        torch_twin(model)
