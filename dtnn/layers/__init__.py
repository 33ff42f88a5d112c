"""Neural-network layers (pure maths: no MPI, no I/O).

Importing this package registers every layer in ``LAYERS`` under its config name:
conv2d, maxpool2d, avgpool2d, globalavgpool, globalmaxpool, kmaxpool, dense,
batchnorm, relu, relu6, prelu, dropout, flatten, and the blocks residual and concat
(branches of layers: ``dtnn.layers.blocks``).  The loss (``SoftmaxCrossEntropy``) is not
a layer of the sequence.
"""
from dtnn.layers.base import LAYERS, Layer, init_weights
from dtnn.layers.activation import PReLU, ReLU
from dtnn.layers.batchnorm import BatchNorm
from dtnn.layers.blocks import Concat, Residual
from dtnn.layers.conv import Conv2D
from dtnn.layers.dense import Dense
from dtnn.layers.dropout import Dropout
from dtnn.layers.flatten import Flatten
from dtnn.layers.kmaxpool import KMaxPool
from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.layers.pooling import AvgPool2D, GlobalAvgPool, GlobalMaxPool, MaxPool2D
from dtnn.layers.relu6 import ReLU6

__all__ = [
    "LAYERS", "Layer", "init_weights",
    "Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool", "GlobalMaxPool", "KMaxPool",
    "Dense", "BatchNorm", "ReLU", "ReLU6", "PReLU", "Dropout", "Flatten", "SoftmaxCrossEntropy",
    "Residual", "Concat",
]
