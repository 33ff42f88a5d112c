# profiler (not a library tool): per spec, TSTEPS timed steps of vgg11_bn w0.5 batch 32 (after
# 4 untimed); per rank: wall, user / sys CPU (getrusage), context switches, sched_yield calls,
# Op.progress calls, hook time; rank 0 enables `perf record` (PERF_CTL fifo) around each
# window and notes its CLOCK_MONOTONIC bounds, so `perf report --time` can cut per spec.
import os, sys, time, json, resource
import numpy as np
from mpi4py import MPI
from dtnn.threads import set_threads; set_threads(1)
from dtnn.models import build_model
from dtnn.optim import build_optimizer
from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.parallel.reducer import GradientReducer
from dtnn.parallel.options import DistOptions
from dtnn.parallel.collectives import base as CB
from dtnn.bench.dist import _one_step, split_spec

CNT = {"yield": 0, "progress": 0, "hooks_s": 0.0, "wait_s": 0.0}
def _timed_into(cls, meth, key):
    f = getattr(cls, meth)
    def g(self, *a, **k):
        t = time.perf_counter()
        try:
            return f(self, *a, **k)
        finally:
            CNT[key] += time.perf_counter() - t
    setattr(cls, meth, g)
_timed_into(GradientReducer, "on_grads_ready", "hooks_s")
_timed_into(GradientReducer, "_wait", "wait_s")
_y = os.sched_yield
def _yc():
    CNT["yield"] += 1; _y()
os.sched_yield = _yc
_p = CB.Op.progress
def _pc(self):
    CNT["progress"] += 1; return _p(self)
CB.Op.progress = _pc

comm = MPI.COMM_WORLD
if comm.rank == 0:
    import dtnn; print("dtnn from", os.path.dirname(dtnn.__file__), flush=True)
NS = int(os.environ.get("TSTEPS", 20))
CTL, ACK = os.environ.get("PERF_CTL"), os.environ.get("PERF_ACK")
def perf(cmd):
    if comm.rank == 0 and CTL:
        with open(CTL, "w") as f: f.write(cmd + "\n")
        with open(ACK) as f: f.read(5)
net = build_model('vgg11_bn', (3, 32, 32), 10, seed=0, width=0.5)
rng = np.random.default_rng(comm.rank)
x = rng.standard_normal((32, 3, 32, 32)).astype(np.float32); y = rng.integers(0, 10, 32)
loss = SoftmaxCrossEntropy()
rows = []
def stat():
    with open("/proc/stat") as f:
        return np.array([int(t) for t in f.readline().split()[1:8]], float)
for spec in sys.argv[1:]:
    comp, kw = split_spec(spec)
    red = None if comp.startswith("none") else GradientReducer(
        comm, net, DistOptions(compress=comp, mode="overlap", **kw))
    opt = build_optimizer("sgd", net, lr=0.0, momentum=0.9)
    for i in range(4):
        _one_step(net, loss, x, y, red, opt)
    comm.Barrier()
    perf("enable"); t_on = time.clock_gettime(time.CLOCK_MONOTONIC)
    comm.Barrier()
    for k in CNT: CNT[k] = 0 * CNT[k]
    if red: red.reset_stats()
    s0 = stat(); r0 = resource.getrusage(resource.RUSAGE_SELF); w0 = time.perf_counter()
    steps = []
    for i in range(NS):
        t = time.perf_counter(); _one_step(net, loss, x, y, red, opt)
        steps.append(time.perf_counter() - t)
    w1 = time.perf_counter(); r1 = resource.getrusage(resource.RUSAGE_SELF); s1 = stat()
    comm.Barrier()
    t_off = time.clock_gettime(time.CLOCK_MONOTONIC); perf("disable")
    st = red.stats() if red else {}
    rows.append({"spec": spec, "rank": comm.rank, "pid": os.getpid(), "n": NS,
                 "wall": w1 - w0, "user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime,
                 "nvcsw": r1.ru_nvcsw - r0.ru_nvcsw, "nivcsw": r1.ru_nivcsw - r0.ru_nivcsw,
                 "stat": (s1 - s0).tolist(), "steps": steps, "t_on": t_on, "t_off": t_off,
                 **CNT, **{k: st.get(k) for k in ("codec_seconds", "exposed_seconds", "hook_mpi_seconds",
                                                   "algorithm", "sent_bytes")}})
    if red: red.close()
allrows = comm.gather(rows, root=0)
if comm.rank == 0:
    out = os.environ.get("PROF_OUT", "prof.json")
    json.dump([r for rr in allrows for r in rr], open(out, "w"))
    for rr in zip(*allrows):
        for r in rr:
            n = r["n"]
            print("%-40s r%d step med %.1f wall/step %.1f user %.1f sys %.1f ms/step, csw %d/%d, yield %d, progress %d, hooks %.1f wait %.1f, codec %s" % (
                r["spec"][:40], r["rank"], 1e3*np.median(r["steps"]), 1e3*r["wall"]/n, 1e3*r["user"]/n, 1e3*r["sys"]/n,
                r["nvcsw"]//n, r["nivcsw"]//n, r["yield"]//n, r["progress"]//n,
                1e3*r["hooks_s"]/n, 1e3*r["wait_s"]/n,
                "%.1f" % (1e3*r["codec_seconds"]) if r["codec_seconds"] is not None else "-"))
