"""Every layer's config survives get_config -> JSON -> LAYERS.get(type)(**config)."""
import json

import numpy as np
import pytest

import dtnn.layers as L
from dtnn.layers import LAYERS
from dtnn.models.model import Model

from ._helpers import rand

# (layer, per-sample input shape)
LAYER_CASES = [
    (L.Conv2D(6, [3, 1], stride=[2, 1], padding=[1, 0], dilation=1,
              groups=3, bias=False, init="glorot"), (3, 8, 8)),
    (L.Conv2D(4, 3, padding="same", dilation=2), (2, 7, 7)),
    (L.Conv2D(4, (3, 3), stride=(1, 1), padding="valid"), (2, 7, 7)),
    (L.MaxPool2D(3, stride=2, padding=1), (2, 7, 7)),
    (L.AvgPool2D([2, 3], stride=1), (2, 7, 7)),
    (L.GlobalAvgPool(), (2, 4, 4)),
    (L.GlobalMaxPool(), (2, 4, 4)),
    (L.KMaxPool(k=3), (2, 9)),
    (L.KMaxPool(k_top=2, layer=1, num_layers=3), (2, 3, 3)),
    (L.Dense(7, bias=False, init="he"), (5,)),
    (L.BatchNorm(momentum=0.2, eps=1e-3), (3, 4, 4)),
    (L.ReLU(), (3,)),
    (L.PReLU(init=0.1, channelwise=False), (3, 2, 2)),
    (L.Dropout(0.25), (6,)),
    (L.Flatten(), (2, 3, 4)),
    (L.ReLU6(), (3, 2, 2)),
    (L.Residual([L.Conv2D(4, 3, stride=2, padding=1), L.BatchNorm(), L.ReLU6()],
                shortcut=[L.Conv2D(4, 1, stride=2, bias=False)]), (2, 6, 6)),
    (L.Concat([[L.Dense(3), L.ReLU()], [], [L.Dense(2, bias=False)]]), (5,)),
]


def test_every_registered_layer_is_covered():
    # (other test modules may register throw-away layers: only count dtnn's own)
    ours = {n for n in LAYERS.names() if LAYERS.get(n).__module__.startswith("dtnn.")}
    assert {l.registry_name for l, _ in LAYER_CASES} == ours


@pytest.mark.parametrize("layer, shape", LAYER_CASES,
                         ids=[f"{l.registry_name}{i}" for i, (l, _) in enumerate(LAYER_CASES)])
def test_config_round_trip(layer, shape):
    cfg = layer.get_config()
    text = json.dumps(cfg)
    clone = LAYERS.get(layer.registry_name)(**json.loads(text))
    assert type(clone) is type(layer)
    assert clone.get_config() == json.loads(text)
    # identical behaviour once built with the same seed
    m1 = Model([layer], shape).build(7)
    m2 = Model([clone], shape).build(7)
    assert m1.output_shape == m2.output_shape
    np.testing.assert_array_equal(m1.flat_params, m2.flat_params)
    x = rand((2,) + tuple(shape), seed=1)
    np.testing.assert_array_equal(m1.forward(x, training=True), m2.forward(x, training=True))


def test_model_from_config_round_trip():
    layers = [L.Conv2D(4, 3, padding=1), L.BatchNorm(), L.ReLU(), L.MaxPool2D(2),
              L.Conv2D(8, 3, groups=4, padding="same"), L.PReLU(), L.GlobalAvgPool(),
              L.Dropout(0.1), L.Dense(3)]
    model = Model(layers, (2, 8, 8), name="t").build(3)
    again = Model.from_config(json.loads(model.config_json()), seed=3)
    assert again.config_json() == model.config_json()
    np.testing.assert_array_equal(again.flat_params, model.flat_params)
    x = rand((2, 2, 8, 8))
    np.testing.assert_array_equal(again.forward(x), model.forward(x))
    assert "conv2d(8, 3x3, pad=1, groups=4)" in model.summary()
