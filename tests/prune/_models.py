"""Small models covering every layer type that can follow a conv or a dense layer."""
from dtnn.layers import (AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten,
                         GlobalAvgPool, GlobalMaxPool, KMaxPool, MaxPool2D, PReLU, ReLU)
from dtnn.models import Model, build_model


def all_followers(seed=0, dropout=0.0):
    """conv-BN-PReLU-avgpool-dropout-conv(bias)-ReLU-maxpool-flatten-dense-BN-PReLU-
    dropout-dense-ReLU-dense."""
    layers = [Conv2D(6, 3, padding=1, bias=False), BatchNorm(), PReLU(), AvgPool2D(2),
              Dropout(dropout), Conv2D(5, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(),
              Dense(12, bias=False), BatchNorm(), PReLU(), Dropout(dropout), Dense(9),
              ReLU(), Dense(4)]
    return Model(layers, (2, 8, 8), name="all_followers").build(seed)


def global_pools(seed=0):
    """conv-ReLU-globalavgpool-dense and conv-shared-PReLU-conv-globalmaxpool-dense."""
    layers = [Conv2D(6, 3, padding=1), PReLU(channelwise=False), Conv2D(7, 3),
              BatchNorm(), ReLU(), GlobalMaxPool(), Dense(8), ReLU(), Dense(3)]
    return Model(layers, (1, 7, 7), name="global_pools").build(seed)


def gap_model(seed=0):
    layers = [Conv2D(5, 3, padding=1), BatchNorm(), ReLU(), GlobalAvgPool(), Dense(3)]
    return Model(layers, (1, 6, 6), name="gap").build(seed)


def kmax_model(seed=0):
    layers = [Conv2D(5, 3, padding=1), ReLU(), KMaxPool(k=4), Flatten(), Dense(3)]
    return Model(layers, (1, 6, 6), name="kmax").build(seed)


def zoo(name, seed=0, **options):
    opts = {"cnet": dict(width=0.0625, hidden=32, dropout=0.0),
            "vgg11_bn": dict(width=0.0625, hidden=64, dropout=0.0),
            "lenet": {}, "simplecnn": dict(filters=6, hidden=16)}[name]
    opts.update(options)
    return build_model(name, (1, 28, 28), 10, seed=seed, **opts)
