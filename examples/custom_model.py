"""A network of your own from dtnn layers: a small ResNet-style model with residual and
concatenation blocks, trained with a hand-written forward/backward (the exchange runs
inside ``model.backward``; ``opt.step()`` waits for it and updates).

    python examples/custom_model.py                 # scikit-learn's digits, a few seconds
    mpiexec -n 2 python examples/custom_model.py
"""
import sys

import dtnn
from dtnn.layers import (BatchNorm, Concat, Conv2D, Dense, GlobalAvgPool, MaxPool2D, ReLU,
                         Residual, SoftmaxCrossEntropy)

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 8
ctx = dtnn.init()
train, test = dtnn.data.load("digits")                     # 1x8x8 handwritten digits


def conv_bn(channels, kernel=3, stride=1):
    return [Conv2D(channels, kernel, stride=stride, padding=kernel // 2, bias=False),
            BatchNorm()]


model = dtnn.Sequential([
    *conv_bn(16), ReLU(),
    Residual([*conv_bn(16), ReLU(), *conv_bn(16)]), ReLU(),               # identity shortcut
    Residual([*conv_bn(32, stride=2), ReLU(), *conv_bn(32)],
             shortcut=conv_bn(32, kernel=1, stride=2)), ReLU(),           # projection
    Concat([conv_bn(16, kernel=1), [*conv_bn(16), ReLU()], [MaxPool2D(3, 1, 1)]]),
    GlobalAvgPool(), Dense(train.num_classes),
], input_shape=train.sample_shape)
if ctx.is_root:
    print(model.summary())

opt = dtnn.DistributedOptimizer(dtnn.optim.SGD(model, lr=0.05, momentum=0.9,
                                               weight_decay=1e-4))
loss_fn = SoftmaxCrossEntropy()
for epoch in range(epochs):
    for x, y in dtnn.data.loader(train, batch_size=32, ctx=ctx).epoch(epoch):
        loss = loss_fn.forward(model.forward(x, training=True), y)
        model.backward(loss_fn.backward())
        opt.step()
    ev = dtnn.evaluate(model, test, ctx)
    if ctx.is_root:
        print(f"epoch {epoch + 1}: loss {loss:.4f}, test accuracy {ev.accuracy:.4f}")
