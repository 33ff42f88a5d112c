"""Convolution variants: each module registers one ``ConvAlgorithm`` by name.

Importing this package registers every variant listed below, so
``CONV_ALGORITHMS.get(name)`` works after ``import dtnn.conv``:

    im2col     im2col + GEMM, chunked (the default); im2col1: one image per chunk
    winograd   Winograd F(4x4)/F(2x2) for 3x3 stride-1 (tile tuned; winograd2/4 fixed)
    implicit   shifted-GEMM accumulation without an im2col buffer (stride 1)
    direct     direct loops in C (tiny layers)
    livetaps   drops the filter taps that only read padding (3x3 on 1x1 images)
    tapgemm    one GEMM per tap over the outputs it reads real pixels for (3x3 on 3x3 / 2x2)
    torch      torch.nn.functional.conv2d (when torch is installed)
    bestof     tunes among the above online, per layer shape (dtnn.conv.bestof); the
               default of every Conv2D (DEFAULT_ALGORITHM)
"""
from dtnn.conv.base import CONV_ALGORITHMS, DEFAULT_ALGORITHM, ConvAlgorithm, ConvGeometry
from dtnn.conv import im2col  # noqa: F401  (registers "im2col")
from dtnn.conv import winograd  # noqa: F401  (registers "winograd", "winograd2/4")
from dtnn.conv import implicit  # noqa: F401  (registers "implicit")
from dtnn.conv import direct  # noqa: F401  (registers "direct")
from dtnn.conv import livetaps  # noqa: F401  (registers "livetaps")
from dtnn.conv import tapgemm  # noqa: F401  (registers "tapgemm")
from dtnn.conv import torch_conv  # noqa: F401  (registers "torch")
from dtnn.conv import bestof  # noqa: F401  (registers "bestof")
from dtnn.conv.im2col import Im2ColConv

__all__ = ["CONV_ALGORITHMS", "DEFAULT_ALGORITHM", "ConvAlgorithm", "ConvGeometry",
           "Im2ColConv"]
