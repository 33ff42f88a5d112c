"""MobileNet V2 (Sandler et al., 2018) for small images, from dtnn layers.

The inverted residual block: a 1x1 convolution expands the channels ``expand`` times,
a depthwise 3x3 convolution (``groups = channels``) filters each channel spatially
(with the block's stride), and a linear 1x1 convolution projects back down; BatchNorm
after each, ReLU6 after the first two.  When the stride is 1 and the channel count is
unchanged, the input is added to the output (``dtnn.layers.Residual``).

``mobilenet_v2`` keeps the paper's stage table (expansion, channels, repeats, stride)
but a stride-1 stem, so 28x28 and 32x32 inputs keep a 4x4 map for the last stages
(the ImageNet network's 224x224 input would be down-sampled 32x).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

from dtnn.conv.base import DEFAULT_ALGORITHM
from dtnn.errors import ConfigError
from dtnn.layers import (BatchNorm, Conv2D, Dense, Dropout, GlobalAvgPool, ReLU6, Residual)
from dtnn.layers.base import Layer
from dtnn.models.zoo import MODELS

#: (expansion t, output channels c, repeats n, first stride s) of each stage
STAGES: Tuple[Tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(channels: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor`` (not below 90% of the request):
    the paper's rule, which keeps channel counts friendly to vectorised kernels."""
    out = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * channels else out


def inverted_residual(in_channels: int, out_channels: int, stride: int = 1, expand: int = 6,
                      conv_algorithm: str = DEFAULT_ALGORITHM) -> List[Layer]:
    """One MobileNet V2 block as layers: ``[Residual(body)]`` when the shapes allow the
    skip connection (stride 1, same channels), else the body's layers themselves."""
    if stride not in (1, 2):
        raise ConfigError(f"inverted_residual: stride must be 1 or 2, got {stride!r}")
    if expand < 1:
        raise ConfigError(f"inverted_residual: expand must be >= 1, got {expand!r}")
    hidden = int(round(in_channels * expand))
    body: List[Layer] = []
    if expand != 1:
        body += [Conv2D(hidden, 1, bias=False, algorithm=conv_algorithm), BatchNorm(), ReLU6()]
    body += [Conv2D(hidden, 3, stride=stride, padding=1, groups=hidden, bias=False,
                    algorithm=conv_algorithm), BatchNorm(), ReLU6(),
             Conv2D(out_channels, 1, bias=False, algorithm=conv_algorithm), BatchNorm()]
    if stride == 1 and in_channels == out_channels:
        return [Residual(body)]
    return body


@MODELS.register("mobilenet_v2")
def mobilenet_v2(input_shape: Sequence[int], num_classes: int, width: float = 1.0,
                 dropout: float = 0.2, last_channels: int = 1280,
                 conv_algorithm: str = DEFAULT_ALGORITHM) -> List[Layer]:
    """MobileNet V2 for 28x28/32x32 images: a 3x3 stem, 17 inverted residual blocks,
    a 1x1 conv to ``last_channels`` (scaled by ``width`` when width > 1), global
    average pooling, dropout and the classifier.  ``width`` scales every layer."""
    if len(input_shape) != 3:
        raise ConfigError(f"model 'mobilenet_v2' needs image input (C, H, W), got shape "
                          f"{tuple(input_shape)}")
    if not width > 0:
        raise ConfigError(f"model 'mobilenet_v2': width must be > 0, got {width!r}")
    channels = make_divisible(32 * width)
    layers: List[Layer] = [Conv2D(channels, 3, padding=1, bias=False, algorithm=conv_algorithm),
                           BatchNorm(), ReLU6()]
    for t, c, n, s in STAGES:
        out = make_divisible(c * width)
        for i in range(n):
            layers += inverted_residual(channels, out, s if i == 0 else 1, t, conv_algorithm)
            channels = out
    last = make_divisible(last_channels * max(1.0, width))
    layers += [Conv2D(last, 1, bias=False, algorithm=conv_algorithm), BatchNorm(), ReLU6(),
               GlobalAvgPool()]
    if dropout > 0:
        layers.append(Dropout(dropout))
    layers.append(Dense(num_classes))
    return layers
