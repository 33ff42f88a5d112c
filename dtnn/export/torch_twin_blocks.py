"""Torch twins of ``relu6`` and of the blocks (``residual``, ``concat``): each child
layer's twin comes from the ``TWINS`` registry, so a block of any registered layers
(MobileNet V2's inverted residuals included) has an exact torch counterpart."""
from __future__ import annotations

import torch
from torch import nn

from dtnn.export.torch_twin import TWINS


def _branch(layers) -> nn.Module:
    if not layers:
        return nn.Identity()
    return nn.Sequential(*[TWINS.get(l.registry_name)(l) for l in layers])


class ResidualTwin(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.body = _branch(layer.branches[0])
        self.shortcut = _branch(layer.branches[1])

    def forward(self, x):
        return self.body(x) + self.shortcut(x)


class ConcatTwin(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.branches = nn.ModuleList([_branch(br) for br in layer.branches])

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches], dim=1)


@TWINS.register("relu6")
def _relu6(layer) -> nn.Module:
    return nn.ReLU6()


@TWINS.register("residual")
def _residual(layer) -> nn.Module:
    return ResidualTwin(layer)


@TWINS.register("concat")
def _concat(layer) -> nn.Module:
    return ConcatTwin(layer)
