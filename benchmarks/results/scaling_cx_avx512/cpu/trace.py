# profiler (not a library tool): timeline of one rank's step: hooks, posts, qring advances, wait; vgg11_bn w0.5 batch 32
import os, sys, time, json
OUTDIR = os.environ.get("TRACE_OUT", os.path.dirname(os.path.abspath(__file__)))
import numpy as np
from mpi4py import MPI
from dtnn.models import build_model
from dtnn.optim import build_optimizer
from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.parallel.reducer import GradientReducer
from dtnn.parallel.options import DistOptions
from dtnn.parallel.collectives import cx_qring, base as CB
from dtnn.bench.dist import _one_step
from dtnn.threads import set_threads; set_threads(1)  # one thread per rank, like dtnn bench dist
EV = []
T0 = [0.0]
def rec(name):
    EV.append((name, time.perf_counter() - T0[0]))
def wrap(cls, meth, label):
    f = getattr(cls, meth)
    def g(self, *a, **k):
        rec(label + ">" + (str(a[0]) if a and isinstance(a[0], int) else ""))
        r = f(self, *a, **k)
        rec(label + "<")
        return r
    setattr(cls, meth, g)
wrap(GradientReducer, "on_grads_ready", "hook")
wrap(GradientReducer, "_post", "post")
wrap(GradientReducer, "_wait", "wait")
_adv = cx_qring._QRingOp._advance
def _adv2(self):
    rec("adv>%d.%d" % (self.tag, self.step)); r = _adv(self); rec("adv<"); return r
cx_qring._QRingOp._advance = _adv2
_prog = CB.Op.progress
def _prog2(self):
    was = self.done; r = _prog(self)
    if r and not was: rec("fin>%s.%s" % (self.name, getattr(self, "tag", "")))
    return r
CB.Op.progress = _prog2
from dtnn.parallel import exchange as EX
_timed = EX.CompressedExchange.timed
def _timed2(self, fn, *a, **k):
    rec("codec>"); r = _timed(self, fn, *a, **k); rec("codec<"); return r
EX.CompressedExchange.timed = _timed2
from dtnn.parallel import worker
wrap(worker.InlineExecutor, "poll", "poll")
comm = MPI.COMM_WORLD
specs = sys.argv[1:]
net = build_model('vgg11_bn', (3, 32, 32), 10, seed=0, width=0.5)
rng = np.random.default_rng(comm.rank)
x = rng.standard_normal((32, 3, 32, 32)).astype(np.float32); y = rng.integers(0, 10, 32)
loss = SoftmaxCrossEntropy()
out = {}
for spec in specs:
    comp, _, rest = spec.partition("|")
    kw = dict(t.split("=") for t in rest.split(",") if t)
    opt = build_optimizer("sgd", net, lr=0.0, momentum=0.9)
    red = None if comp.startswith("none") else GradientReducer(comm, net, DistOptions(compress=comp, mode="overlap", **kw))
    steps = []
    NS = int(__import__("os").environ.get("TSTEPS", 14))
    def stat():
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:8]]
        return np.array(v, float)  # user nice system idle iowait irq softirq (ticks)
    for i in range(NS):
        if i == 4:
            comm.Barrier(); w0 = time.perf_counter(); c0 = time.process_time(); s0 = stat()
        EV.clear(); comm.Barrier(); T0[0] = time.perf_counter()
        if red is None:
            logits = net.forward(x, training=True); loss.forward(logits, y)
            rec("fwd"); net.backward(loss.backward(), on_grads_ready=lambda l: rec("hook>" + str(l)))
        else:
            logits = net.forward(x, training=True); loss.forward(logits, y)
            rec("fwd"); red.start_step(); net.backward(loss.backward(), on_grads_ready=red.on_grads_ready); red.finish_step()
        rec("end")
        if i >= 4: steps.append(list(EV))
    comm.Barrier(); w1 = time.perf_counter(); c1 = time.process_time(); s1 = stat()
    out[spec] = {"rank": comm.rank, "wall": w1 - w0, "cpu": c1 - c0, "stat": (s1 - s0).tolist(),
                 "nsteps": NS - 4, "steps": steps, "codec_ms": (1e3*red.stats()["codec_seconds"] if red else 0)}
    if red: red.close()
allout = comm.gather(out, root=0)
if comm.rank == 0:
    json.dump(allout, open(os.path.join(OUTDIR, "trace_%d.json" % comm.size), "w"))
    for spec in specs:
        for r in range(comm.size):
            st = allout[r][spec]["steps"]
            ends = [s[-1][1] for s in st]
            fw = [dict(s)["fwd"] for s in st]
            print(spec, "rank", r, "step med %.1f fwd %.1f" % (1e3*np.median(ends), 1e3*np.median(fw)))
        s = allout[0][spec]["steps"][int(np.argsort([s[-1][1] for s in allout[0][spec]["steps"]])[len(allout[0][spec]["steps"])//2])]
        print("  median step rank 0:", " ".join("%s@%.1f" % (n, 1e3*t) for n, t in s if not n.startswith("hook<")))
