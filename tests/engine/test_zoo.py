"""Model builders: every model builds for 28x28 and 32x32 inputs, runs, and prints."""
import numpy as np
import pytest

from dtnn.errors import ConfigError
from dtnn.models import MODELS, Model, build_model


@pytest.mark.parametrize("name", ["simplecnn", "lenet", "vgg11_bn", "vgg16_bn", "vgg19", "cnet"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_every_model_builds_and_runs(name, shape):
    options = {} if name in ("simplecnn", "lenet") else {"width": 0.0625, "hidden": 16}
    model = build_model(name, shape, 7, seed=1, **options)
    x = np.random.default_rng(0).standard_normal((2,) + shape).astype(np.float32)
    y = model.forward(x, training=True)
    assert y.shape == (2, 7) and np.isfinite(y).all()
    model.backward(np.ones_like(y))
    assert np.abs(model.flat_grads).sum() > 0
    text = model.summary()
    assert f"total parameters: {model.num_params():,}" in text
    assert len(text.splitlines()) == len(model.layers) + 6


def test_full_size_parameter_counts():
    # vgg11_bn sized for 32x32 (one 512-unit hidden layer): conv weights + BN + FCs
    model = build_model("vgg11_bn", (3, 32, 32), 10)
    convs = [l for l in model.layers if l.registry_name == "conv2d"]
    assert [l.params["weight"].shape[0] for l in convs] == [64, 128, 256, 256, 512, 512, 512, 512]
    assert model.output_shape == (10,)
    cnet = build_model("cnet", (1, 28, 28), 10)
    kinds = [l.registry_name for l in cnet.layers]
    assert kinds.count("conv2d") == 6 and kinds.count("prelu") == 7 and "dropout" in kinds


def test_same_seed_same_weights_and_config_round_trip():
    a = build_model("lenet", (1, 28, 28), 10, seed=3)
    b = build_model("lenet", (1, 28, 28), 10, seed=3)
    c = build_model("lenet", (1, 28, 28), 10, seed=4)
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    assert not np.array_equal(a.flat_params, c.flat_params)
    rebuilt = Model.from_config(a.get_config())
    assert rebuilt.config_json() == a.config_json() and rebuilt.num_params() == a.num_params()


def test_flat_layout_is_reverse_layer_order():
    model = build_model("lenet", (1, 28, 28), 10)
    first = [s.layer_index for s in model.slots]
    assert first == sorted(first, reverse=True)
    conv = model.layers[0]
    conv.params["weight"][...] = 7.0  # a view: writes land in the flat vector
    start, stop = model.layer_param_range(0)
    assert (model.flat_params[start:stop] == 7.0).sum() == conv.params["weight"].size


def test_bad_model_requests():
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        build_model("nope", (1, 28, 28), 10)
    with pytest.raises(ConfigError, match="model 'simplecnn'.*width"):
        build_model("simplecnn", (1, 28, 28), 10, width=2)
    with pytest.raises(ConfigError, match="image input"):
        build_model("lenet", (64,), 10)
    assert set(MODELS.names()) >= {"simplecnn", "lenet", "vgg11_bn", "vgg16_bn", "vgg19", "cnet"}
