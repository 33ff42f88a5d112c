"""Convolution variants: each module registers one ``ConvAlgorithm`` by name.

Importing this package registers every variant listed below, so
``CONV_ALGORITHMS.get(name)`` works after ``import dtnn.conv``.
"""
from dtnn.conv.base import CONV_ALGORITHMS, ConvAlgorithm, ConvGeometry
from dtnn.conv import im2col  # noqa: F401  (registers "im2col")
from dtnn.conv.im2col import Im2ColConv

__all__ = ["CONV_ALGORITHMS", "ConvAlgorithm", "ConvGeometry", "Im2ColConv"]
