"""Physical removal == zeroing: the pruned model computes exactly what the unpruned
model computes with the removed units' outputs forced to zero (filters, biases and
BatchNorm affine zeroed), for every layer type that can follow a conv or dense layer."""
import numpy as np
import pytest

from dtnn.errors import ConfigError
from dtnn.io.checkpoint import load_checkpoint, save_checkpoint
from dtnn.models import Model
from dtnn.prune.cost import model_cost
from dtnn.prune.graph import prunable_groups
from dtnn.prune.surgery import remove_units

from ._models import all_followers, gap_model, global_pools, kmax_model, zoo

FACTORIES = {"all_followers": all_followers, "global_pools": global_pools,
             "gap": gap_model, "kmax": kmax_model,
             **{n: (lambda n=n: zoo(n)) for n in ("cnet", "vgg11_bn", "lenet", "simplecnn")}}


def _randomise(model, seed=3):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for name, p in layer.params.items():
            p[...] = rng.standard_normal(p.shape) * (0.3 if name != "gamma" else 1.0)
        if "running_var" in layer.buffers:
            layer.buffers["running_mean"][:] = rng.standard_normal(layer.input_shape[0])
            layer.buffers["running_var"][:] = rng.uniform(0.5, 2.0, layer.input_shape[0])


def _zeroed(model, removals):
    """A copy of ``model`` whose removed units output exactly zero at their tap."""
    copy = Model.from_config(model.get_config())
    np.copyto(copy.flat_params, model.flat_params)
    copy.load_buffers(model.buffers())
    groups = {g.producer: g for g in prunable_groups(copy)}
    for p, units in removals.items():
        g, layer = groups[p], copy.layers[p]
        if g.kind == "conv":
            layer.params["weight"][units] = 0
        else:
            layer.params["weight"][:, units] = 0
        if "bias" in layer.params:
            layer.params["bias"][units] = 0
        if g.tap != p:
            bn = copy.layers[g.tap]
            bn.params["gamma"][units] = 0
            bn.params["beta"][units] = 0
    return copy


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_pruned_equals_zeroed(name):
    model = FACTORIES[name]()
    _randomise(model)
    rng = np.random.default_rng(7)
    removals = {g.producer: sorted(rng.choice(g.units, max(1, g.units // 2), replace=False)
                                   .tolist())
                for g in prunable_groups(model) if g.prunable}
    assert removals
    pruned = remove_units(model, removals)
    x = rng.standard_normal((5,) + model.input_shape).astype(np.float32)
    ref = _zeroed(model, removals).forward(x)
    out = pruned.forward(x)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    assert pruned.num_params() < model.num_params()
    for p, units in removals.items():
        layer = pruned.layers[p]
        n = layer.out_channels if layer.registry_name == "conv2d" else layer.units
        assert n == prunable_groups(model)[[g.producer for g in prunable_groups(model)]
                                           .index(p)].units - len(units)


def test_flatten_dense_rows_follow_the_maps():
    """simplecnn: removing conv map k removes Dense rows k*196 .. k*196+195."""
    model = zoo("simplecnn")
    pruned = remove_units(model, {0: [1, 3]})
    w, pw = model.layers[4].params["weight"], pruned.layers[4].params["weight"]
    keep = [c for c in range(6) if c not in (1, 3)]
    block = w.shape[0] // 6
    expect = np.concatenate([w[c * block:(c + 1) * block] for c in keep])
    np.testing.assert_array_equal(pw, expect)
    assert pw.shape == (4 * block, 16)


def test_pruned_checkpoint_round_trip(tmp_path):
    model = zoo("cnet", conv_algorithm="im2col")    # pinned: two forwards compared bitwise
    _randomise(model)
    pruned = remove_units(model, {0: [0, 2], 4: [1], 23: [1]})
    path = save_checkpoint(str(tmp_path / "p.h5"), pruned, step=5, epoch=1)
    back = load_checkpoint(path).model
    assert back.get_config() == pruned.get_config()
    np.testing.assert_array_equal(back.flat_params, pruned.flat_params)
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(back.forward(x), pruned.forward(x))
    assert model_cost(back)["maps_per_layer"]["0"] == model.layers[0].out_channels - 2


def test_bad_removals():
    model = zoo("lenet")
    with pytest.raises(ValueError, match="cannot remove all"):
        remove_units(model, {0: list(range(6))})
    with pytest.raises(ValueError, match="out of range"):
        remove_units(model, {0: [6]})
    with pytest.raises(ConfigError, match="model's outputs"):
        remove_units(model, {11: [0]})
    with pytest.raises(ValueError, match="not a Conv2D or Dense"):
        remove_units(model, {1: [0]})


def test_blocks_are_reported_not_cut():
    """Residual/concat blocks end a group: the producer before one is not prunable, with
    the reason; a model whose every conv is in or before a block is refused."""
    from dtnn.config import Config
    from dtnn.layers import Conv2D, Dense, Flatten, GlobalAvgPool, ReLU
    from dtnn.layers.blocks import Residual
    from dtnn.prune.loop import check_prunable
    layers = [Conv2D(4, 3, padding=1), ReLU(),
              Residual([Conv2D(4, 3, padding=1), ReLU()]),
              Conv2D(6, 3, padding=1), ReLU(), GlobalAvgPool(), Dense(3)]
    model = Model(layers, (1, 6, 6)).build(0)
    groups = {g.producer: g for g in prunable_groups(model)}
    assert "layer 2 (residual)" in groups[0].reason
    assert groups[3].prunable                       # after the block: fine
    assert remove_units(model, {3: [0, 1]}).layers[3].out_channels == 4
    with pytest.raises(ConfigError, match="cannot be pruned"):
        remove_units(model, {0: [0]})
    only_blocks = Model([Conv2D(4, 3, padding=1), Residual([Conv2D(4, 3, padding=1)]),
                         Flatten(), Dense(3)], (1, 6, 6)).build(0)
    with pytest.raises(ConfigError, match="no Conv2D layer of this model can be pruned"):
        check_prunable(only_blocks, Config())
