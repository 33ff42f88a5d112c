"""Your own training loop on dtnn: the steps ``dtnn train --config examples/custom_loop.toml``
takes, with the same result (bit for bit in one process; to float rounding under MPI).

    python examples/custom_loop.py                          # Fashion-MNIST, one process
    mpiexec -n 4 python examples/custom_loop.py             # data parallel, PowerSGD
    python examples/custom_loop.py data.npz runs/mine.h5    # other data (IDX dir, .npz, .h5)

Unchanged alone or under ``mpiexec``: ``dtnn.init()`` asks the launcher, every process
takes its shard of each batch, ``DistributedOptimizer`` broadcasts rank 0's start,
averages gradients (bucketed, overlapped with backward, compressed with error feedback)
before each update.  Then ``examples/checkpoint_inference.py`` reads the saved file.
"""
import sys

import dtnn

ctx = dtnn.init()
train, test = dtnn.data.load(sys.argv[1] if len(sys.argv) > 1 else "fashion-mnist")
model = dtnn.models.build("simplecnn", train.sample_shape, train.num_classes)
opt = dtnn.DistributedOptimizer(dtnn.optim.SGD(model, lr=0.05, momentum=0.9),
                                compress="powersgd:rank=2")
for epoch in range(2):
    for x, y in dtnn.data.loader(train, batch_size=64, ctx=ctx).epoch(epoch):
        loss = opt.step(model, x, y)
    accuracy = dtnn.evaluate(model, test, ctx).accuracy
    if ctx.is_root:
        print(f"epoch {epoch + 1}: loss {loss:.4f}, test accuracy {accuracy:.4f}")
dtnn.save(sys.argv[2] if len(sys.argv) > 2 else "runs/custom_loop.h5", model, opt, data=train)
