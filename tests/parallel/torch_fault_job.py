"""A dtnn.torch training script whose rank 1 raises after two steps (no dtnn CLI around
it): init()'s excepthook must abort the whole job.  A watchdog ends any rank after 60 s
(exit 7), so a broken abort path never leaves processes behind."""
import os
import threading

import torch

import dtnn.torch as hvd

watchdog = threading.Timer(60, lambda: os._exit(7))
watchdog.daemon = True
watchdog.start()
hvd.init()
model = torch.nn.Linear(8, 2)
opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                               named_parameters=model.named_parameters())
for step in range(100000):
    if hvd.rank() == 1 and step == 2:
        raise RuntimeError("injected failure in the training loop")
    opt.zero_grad()
    model(torch.randn(4, 8)).sum().backward()   # rank 0 then waits in the exchange
    opt.step()
