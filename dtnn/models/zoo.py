"""Model builders, parameterised by input shape and class count.

``build_model("vgg11_bn", (1, 28, 28), 10, width=0.5)`` returns a built ``Model``.
Builders only assemble layers; every builder accepts ``conv_algorithm`` so the whole
network can be switched to another convolution variant.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

from dtnn.conv.base import DEFAULT_ALGORITHM
from dtnn.errors import ConfigError
from dtnn.layers import (BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, PReLU,
                         ReLU)
from dtnn.layers.base import Layer
from dtnn.models.model import Model
from dtnn.models.options import check_options
from dtnn.registry import Registry

MODELS = Registry("model")

Shape = Tuple[int, ...]


def build_model(name: str, input_shape: Sequence[int], num_classes: int, seed: int = 0,
                **options: Any) -> Model:
    """Zoo model ``name`` (``MODELS.names()``) for per-sample ``input_shape`` and
    ``num_classes``, built with ``seed``; ``options`` go to the builder (ConfigError if it does
    not take one)."""
    builder = MODELS.get(name)
    options = check_options(name, options)
    try:
        layers = builder(tuple(input_shape), int(num_classes), **options)
    except TypeError as exc:  # an option a user-registered builder does not take
        raise ConfigError(f"model '{name}': {exc}") from None
    arch = {"name": name, "num_classes": int(num_classes), "options": dict(options)}
    return Model(layers, tuple(input_shape), name=name, arch=arch).build(seed)


def _check_image(name: str, input_shape: Shape) -> None:
    if len(input_shape) != 3:
        raise ConfigError(f"model '{name}' needs image input (C, H, W), got shape {input_shape}")


@MODELS.register("simplecnn")
def simplecnn(input_shape: Shape, num_classes: int, filters: int = 32, hidden: int = 64,
              dropout: float = 0.0, conv_algorithm: str = DEFAULT_ALGORITHM,
              init: str = "torch") -> List[Layer]:
    """conv3x3-relu-maxpool-flatten-dense(hidden)-relu-dense: the small handwriting CNN.

    ``init="torch"`` (torch's default init): with He init the hidden FC layer, fed
    6,272 features, took a first SGD step of 20% of its weights at lr 0.05 and half of
    its units died (benchmarks/results/recipes.md)."""
    _check_image("simplecnn", input_shape)
    layers: List[Layer] = [
        Conv2D(filters, 3, padding=1, algorithm=conv_algorithm, init=init), ReLU(),
        MaxPool2D(2), Flatten(), Dense(hidden, init=init), ReLU()]
    if dropout > 0:
        layers.append(Dropout(dropout))
    layers.append(Dense(num_classes, init=init))
    return layers


@MODELS.register("lenet")
def lenet(input_shape: Shape, num_classes: int, conv_algorithm: str = DEFAULT_ALGORITHM,
          filters: Sequence[int] = (6, 16), hidden: Sequence[int] = (120, 84),
          padding="auto", init: str = "torch") -> List[Layer]:
    """LeNet-5 with ReLU and max pooling.  ``padding="auto"`` pads the first convolution
    by 2 on inputs up to 28x28 (so 28x28 gets the 32x32 geometry: 61,706 parameters with
    the defaults); ``padding=0`` is the classic unpadded shape (44,426 on 28x28)."""
    _check_image("lenet", input_shape)
    pad = (2 if input_shape[1] <= 28 else 0) if padding == "auto" else int(padding)
    layers: List[Layer] = [
        Conv2D(filters[0], 5, padding=pad, algorithm=conv_algorithm, init=init), ReLU(),
        MaxPool2D(2), Conv2D(filters[1], 5, algorithm=conv_algorithm, init=init), ReLU(),
        MaxPool2D(2), Flatten()]
    for units in hidden:
        layers += [Dense(units, init=init), ReLU()]
    layers.append(Dense(num_classes, init=init))
    return layers


def _conv_stack(spec: Sequence, input_shape: Shape, width: float, batchnorm: bool,
                activation: str, conv_algorithm: str) -> Tuple[List[Layer], int]:
    """3x3 'same' convolutions ('M' = 2x2 max pool).  A pool that would shrink the
    image below 1x1 is skipped: that is how one spec serves 28x28 and 32x32 inputs."""
    layers: List[Layer] = []
    size = min(input_shape[1:])
    channels = input_shape[0]
    for item in spec:
        if item == "M":
            if size >= 2:
                layers.append(MaxPool2D(2))
                size //= 2
            continue
        channels = max(1, int(round(item * width)))
        layers.append(Conv2D(channels, 3, padding=1, bias=not batchnorm,
                             algorithm=conv_algorithm))
        if batchnorm:
            layers.append(BatchNorm())
        layers.append(PReLU() if activation == "prelu" else ReLU())
    return layers, channels


_VGG_SPECS: Dict[str, List] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


def _vgg(spec_name: str, batchnorm: bool):
    def builder(input_shape: Shape, num_classes: int, width: float = 1.0, hidden: int = 512,
                dropout: float = 0.5, conv_algorithm: str = DEFAULT_ALGORITHM) -> List[Layer]:
        _check_image(spec_name, input_shape)
        layers, _ = _conv_stack(_VGG_SPECS[spec_name], input_shape, width, batchnorm, "relu",
                                conv_algorithm)
        layers += [Flatten(), Dense(max(1, int(hidden * width)), init="he"), ReLU()]
        if dropout > 0:
            layers.append(Dropout(dropout))
        layers.append(Dense(num_classes))
        return layers

    builder.__doc__ = (f"{spec_name}{' with BatchNorm' if batchnorm else ''} for small images "
                       "(28x28/32x32): 3x3 convs, a width multiplier, one hidden FC layer.")
    return builder


MODELS.register("vgg11_bn")(_vgg("vgg11", True))
MODELS.register("vgg16_bn")(_vgg("vgg16", True))
MODELS.register("vgg19")(_vgg("vgg19", False))


@MODELS.register("cnet")
def cnet(input_shape: Shape, num_classes: int, width: float = 1.0, hidden: int = 1024,
         dropout: float = 0.5, conv_algorithm: str = DEFAULT_ALGORITHM) -> List[Layer]:
    """Compact character-recognition CNN: 96C3-MP-128C3-MP-160C3-MP-256C3-256C3-MP-384C3-MP-
    1024FC, BatchNorm+PReLU after every conv, PReLU+dropout after the FC layer."""
    _check_image("cnet", input_shape)
    spec = [96, "M", 128, "M", 160, "M", 256, 256, "M", 384, "M"]
    layers, _ = _conv_stack(spec, input_shape, width, True, "prelu", conv_algorithm)
    layers += [Flatten(), Dense(max(1, int(hidden * width)), init="he"), PReLU()]
    if dropout > 0:
        layers.append(Dropout(dropout))
    layers.append(Dense(num_classes))
    return layers
