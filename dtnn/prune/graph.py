"""Which units of a sequential model can be removed, and what each removal touches.

A *prunable group* is a producer layer whose output channels (Conv2D feature maps) or
units (hidden Dense) can be cut, the channel-wise layers that follow it, and the one
consumer that reads them::

    Conv2D(K) -> [BatchNorm | PReLU | ReLU | Dropout | MaxPool2D | AvgPool2D]* ->
        Conv2D (its input channels)
        | GlobalAvgPool/GlobalMaxPool -> [Dropout | BatchNorm | PReLU | ReLU]* -> Dense
        | KMaxPool/Flatten -> [Dropout]* -> Dense (the rows of each channel's block)
    Dense(U) -> [BatchNorm | PReLU | ReLU | Dropout]* -> Dense (its rows)

(ReLU6 counts as ReLU.) A residual or concat block anywhere between a producer and its
consumer ends the group: the producer is reported as not prunable (cutting channels
that a block adds or concatenates needs the whole block's channels to agree, which this
surgery does not do), and layers inside blocks are not pruned.

The criterion is measured at the *tap*: the output of the last channel-wise affine
layer of the group (the BatchNorm if there is one, else the producer), i.e. after the
conv/BN and before the nonlinearity. Everything after the tap maps a zero channel to a
zero channel (ReLU, PReLU, pooling, dropout), so zeroing the tap output of a unit is
exactly removing it, and the Taylor estimate there is the first-order change of the loss
from the physical removal.

The producer's last group (the classifier's output) and structures dtnn cannot cut
(grouped convolutions, unknown layer types between producer and consumer) are not
prunable; ``prunable_groups`` says why in ``Group.reason``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

#: layers after a producer that keep one value (or one map) per unit
CHANNEL_WISE = {"batchnorm", "prelu", "relu", "relu6", "dropout"}
#: spatial layers that keep the channel axis of a feature map
SPATIAL = {"maxpool2d", "avgpool2d"}
#: layers that turn (C, ...) maps into per-channel blocks of features
TO_FEATURES = {"flatten", "globalavgpool", "globalmaxpool", "kmaxpool"}


@dataclass
class Group:
    producer: int                 # index of the Conv2D / Dense whose outputs are cut
    kind: str                     # "conv" or "dense"
    units: int                    # current number of maps / units
    #: (layer index, rows per unit) of the channel-wise layers to slice: 1 before a
    #: flatten, the per-channel feature block after it
    followers: List[Tuple[int, int]] = field(default_factory=list)
    consumer: Optional[int] = None                        # layer whose inputs shrink
    block: int = 1                # consumer input rows per unit (features per channel)
    tap: int = -1                 # layer whose output the criterion reads
    reason: str = ""              # why not prunable ("" = prunable)

    @property
    def prunable(self) -> bool:
        return not self.reason


def _feature_block(layer) -> int:
    """Features per channel after a TO_FEATURES layer (its per-sample output / channels)."""
    C = layer.input_shape[0]
    total = 1
    for d in layer.output_shape:
        total *= int(d)
    return total // C


def _group_from(model, i: int) -> Group:
    layers = model.layers
    producer = layers[i]
    kind = "conv" if producer.registry_name == "conv2d" else "dense"
    units = producer.out_channels if kind == "conv" else producer.units
    g = Group(producer=i, kind=kind, units=units, tap=i)
    if kind == "conv" and producer.groups != 1:
        g.reason = "grouped convolution"
        return g
    block, flattened, j = 1, kind == "dense", i + 1
    while j < len(layers):
        name = layers[j].registry_name
        if name == "conv2d":
            if flattened:
                g.reason = f"layer {j} (conv2d) after the features were flattened"
            elif layers[j].groups != 1:
                g.reason = f"consumer {j} is a grouped convolution"
            g.consumer = j
            break
        if name == "dense":
            if kind == "conv" and not flattened:
                g.reason = f"dense layer {j} without a flatten/global pool before it"
            g.consumer, g.block = j, block
            break
        if name in CHANNEL_WISE:
            g.followers.append((j, block))
            if name == "batchnorm" and g.tap == j - 1:
                g.tap = j    # BN right after the producer: read after it
        elif name in SPATIAL and not flattened:
            pass
        elif name == "flatten" and flattened:
            pass     # (C, k) -> C*k after a k-max/global pool: same blocks
        elif name in TO_FEATURES and not flattened:
            block = _feature_block(layers[j])
            flattened = True
        else:
            g.reason = f"layer {j} ({name}) between layer {i} and its consumer is not supported"
            break
        j += 1
    if g.consumer is None and not g.reason:
        g.reason = "its outputs are the model's outputs"
    return g


def prunable_groups(model) -> List[Group]:
    """One ``Group`` per Conv2D and per Dense layer of ``model``, in layer order."""
    out = []
    for i, layer in enumerate(model.layers):
        if layer.registry_name in ("conv2d", "dense"):
            out.append(_group_from(model, i))
    return out


def channel_counts(model) -> List[Tuple[int, str, int]]:
    """(layer index, kind, units) for every Conv2D and Dense layer."""
    return [(g.producer, g.kind, g.units) for g in prunable_groups(model)]
