# attribution only (not timings): cProfile of the exchange's Python per step, per spec,
# on rank 0 of a local run (mpiexec -n 2, shared memory); prints the functions with the
# largest own time (per step) under dtnn/parallel and dtnn/compress
import os, sys, cProfile, pstats, io
import numpy as np
from mpi4py import MPI
from dtnn.threads import set_threads; set_threads(1)
from dtnn.models import build_model
from dtnn.optim import build_optimizer
from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.parallel.reducer import GradientReducer
from dtnn.parallel.options import DistOptions
from dtnn.bench.dist import _one_step, split_spec

comm = MPI.COMM_WORLD
NS = int(os.environ.get("TSTEPS", 20))
net = build_model('vgg11_bn', (3, 32, 32), 10, seed=0, width=0.5)
rng = np.random.default_rng(comm.rank)
x = rng.standard_normal((32, 3, 32, 32)).astype(np.float32); y = rng.integers(0, 10, 32)
loss = SoftmaxCrossEntropy()
for spec in sys.argv[1:]:
    comp, kw = split_spec(spec)
    red = GradientReducer(comm, net, DistOptions(compress=comp, mode="overlap", **kw))
    opt = build_optimizer("sgd", net, lr=0.0, momentum=0.9)
    for i in range(4):
        _one_step(net, loss, x, y, red, opt)
    comm.Barrier()
    pr = cProfile.Profile()
    pr.enable()
    for i in range(NS):
        _one_step(net, loss, x, y, red, opt)
    pr.disable()
    red.close()
    if comm.rank == 0:
        s = io.StringIO()
        st = pstats.Stats(pr, stream=s)
        st.sort_stats("tottime").print_stats(os.environ.get("FILT", "."), int(os.environ.get("TOP", 45)))
        print("=" * 30, spec, "(per", NS, "steps)")
        print(s.getvalue())
