"""A custom training loop on the public API (run by test_watchdog.py):

    mpiexec -n N python api_job.py MODE STATE_DIR

``dtnn.init()`` alone must make the job end when one rank fails.  MODE:

    ok     30 steps, normal end (status 0)
    leave  rank 1 calls sys.exit(0) at step 10 (outside any dtnn call)
    wait   rank 1 writes STATE_DIR/ready after step 10 and keeps training slowly (the
           test sends SIGINT to mpiexec, or SIGSTOP to rank 1 with a stall timeout)
"""
import os
import sys
import time

import dtnn

mode, state = sys.argv[1], sys.argv[2]
ctx = dtnn.init()
train, _ = dtnn.data.load("synthetic", shape=[1, 8, 8], classes=3, n_train=256, n_test=16)
model = dtnn.models.build("simplecnn", train.sample_shape, train.num_classes, filters=4,
                          hidden=8)
opt = dtnn.DistributedOptimizer(dtnn.optim.SGD(model, lr=0.05))
step = 0
for epoch in range(1000):
    for x, y in dtnn.data.loader(train, batch_size=8, ctx=ctx).epoch(epoch):
        opt.step(model, x, y)
        step += 1
        if mode == "ok" and step == 30:
            break
        if ctx.rank == 1 and step == 10:
            if mode == "leave":
                sys.exit(0)
            with open(os.path.join(state, f"pid-{ctx.rank}"), "w") as fh:
                fh.write(str(os.getpid()))
            os.replace(os.path.join(state, f"pid-{ctx.rank}"), os.path.join(state, "ready"))
        if mode == "wait" and step > 10:
            time.sleep(0.02)
    if mode == "ok":
        break
print(f"rank {ctx.rank} done", flush=True)
