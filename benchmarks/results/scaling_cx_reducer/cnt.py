# profiler (not a library tool): per spec, TSTEPS timed steps of vgg11_bn w0.5 batch 32 (after
# 4 untimed), per rank and per step: MPI test calls (Request.Testall / Testsome, counted by
# a subclass put in place of MPI.Request, which both the old and the new code look up),
# Op.progress calls, hooks, wall time in the hooks and in the final wait, the reducer's own
# hook time outside the codec (hook_mpi) and exposed time.  Works on either tree.
import os, sys, time, json
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

CNT = {"testall": 0, "testsome": 0, "progress": 0, "hooks": 0, "hooks_s": 0.0, "wait_s": 0.0,
       "test_hook_s": 0.0, "test_wait_s": 0.0, "post_s": 0.0, "isend_hook_s": 0.0,
       "isend_wait_s": 0.0, "isends": 0, "iallreduce_s": 0.0, "xpost_s": 0.0, "xpost_codec_s": 0.0,
       "adv_s": 0.0, "adv_codec_s": 0.0, "small_s": 0.0}
WHERE = ["wait"]
_R = MPI.Request
class _CountReq(_R):
    @classmethod
    def Testall(cls, reqs, statuses=None):
        CNT["testall"] += 1
        t = time.perf_counter()
        try:
            return _R.Testall(reqs, statuses)
        finally:
            CNT["test_%s_s" % WHERE[0]] += time.perf_counter() - t
    @classmethod
    def Testsome(cls, reqs, statuses=None):
        CNT["testsome"] += 1
        t = time.perf_counter()
        try:
            return _R.Testsome(reqs, statuses)
        finally:
            CNT["test_%s_s" % WHERE[0]] += time.perf_counter() - t
MPI.Request = _CountReq
class _TimedComm(MPI.Intracomm):
    """Isend / Irecv timed (the exchange's communicator is a Dup of this one: same type)."""
    def Isend(self, *a, **k):
        CNT["isends"] += 1
        t = time.perf_counter()
        try:
            return super().Isend(*a, **k)
        finally:
            CNT["isend_%s_s" % WHERE[0]] += time.perf_counter() - t
    def Iallreduce(self, *a, **k):
        t = time.perf_counter()
        try:
            return super().Iallreduce(*a, **k)
        finally:
            CNT["iallreduce_s"] += time.perf_counter() - t
    def Irecv(self, *a, **k):
        CNT["isends"] += 1
        t = time.perf_counter()
        try:
            return super().Irecv(*a, **k)
        finally:
            CNT["isend_%s_s" % WHERE[0]] += time.perf_counter() - t
def _timed_into(cls, meth, key, n=None):
    f = getattr(cls, meth)
    def g(self, *a, **k):
        t = time.perf_counter()
        if key != "post_s":
            WHERE[0] = "hook" if key == "hooks_s" else "wait"
        try:
            return f(self, *a, **k)
        finally:
            if key != "post_s":
                WHERE[0] = "wait"
            CNT[key] += time.perf_counter() - t
            if n: CNT[n] += 1
    setattr(cls, meth, g)
_timed_into(GradientReducer, "on_grads_ready", "hooks_s", "hooks")
_timed_into(GradientReducer, "_wait", "wait_s")
_timed_into(GradientReducer, "_post", "post_s")   # inside a hook: posting a bucket (codec included)
_p = CB.Op.progress
def _pc(self):
    CNT["progress"] += 1; return _p(self)
CB.Op.progress = _pc
_cp = CB.ChainOp.progress
def _cpc(self):
    CNT["progress"] += 1; return _cp(self)
CB.ChainOp.progress = _cpc
# the exchange's post and the ring op's hop, each with the codec time inside it (to subtract)
from dtnn.parallel.exchange import CompressedExchange
from dtnn.parallel.collectives import cx_qring
def _with_codec(cls, meth, key, get_cx):
    f = getattr(cls, meth)
    def g(self, *a, **k):
        cx = get_cx(self)
        c0 = cx.codec_seconds
        t = time.perf_counter()
        try:
            return f(self, *a, **k)
        finally:
            CNT[key] += time.perf_counter() - t
            CNT[key.replace("_s", "_codec_s")] += cx.codec_seconds - c0
    setattr(cls, meth, g)
_with_codec(CompressedExchange, "post", "xpost_s", lambda s: s)
_with_codec(cx_qring._QRingOp, "_advance", "adv_s", lambda s: s.t.cx)
comm = MPI.COMM_WORLD
if comm.rank == 0:
    import dtnn; print("dtnn from", os.path.dirname(dtnn.__file__), flush=True)
NS = int(os.environ.get("TSTEPS", 20))
net = build_model('vgg11_bn', (3, 32, 32), 10, seed=0, width=0.5)
rng = np.random.default_rng(comm.rank)
x = rng.standard_normal((32, 3, 32, 32)).astype(np.float32); y = rng.integers(0, 10, 32)
loss = SoftmaxCrossEntropy()
rows = []
for spec in sys.argv[1:]:
    comp, kw = split_spec(spec)
    red = GradientReducer(_TimedComm(comm), net, DistOptions(compress=comp, mode="overlap", **kw))
    opt = build_optimizer("sgd", net, lr=0.0, momentum=0.9)
    for i in range(4):
        _one_step(net, loss, x, y, red, opt)
    comm.Barrier()
    for k in CNT: CNT[k] = 0 * CNT[k]
    red.reset_stats()
    steps = []
    for i in range(NS):
        t = time.perf_counter(); _one_step(net, loss, x, y, red, opt)
        steps.append(time.perf_counter() - t)
    comm.Barrier()
    st = red.stats()
    rows.append({"spec": spec, "rank": comm.rank, "n": NS, "steps": steps, **CNT,
                 **{k: st.get(k) for k in ("codec_seconds", "exposed_comm_seconds", "hook_mpi_seconds")}})
    red.close()
allrows = comm.gather(rows, root=0)
if comm.rank == 0:
    out = os.environ.get("PROF_OUT")
    if out:
        json.dump([r for rr in allrows for r in rr], open(out, "w"))
    for rr in zip(*allrows):
        for r in rr:
            n = r["n"]
            print("%-34s r%d    exchange.post %.2f ms (codec %.2f), qring hops' _advance %.2f (codec %.2f), Iallreduce %.2f" % (
                r["spec"][:34], r["rank"], 1e3 * r["xpost_s"] / n, 1e3 * r["xpost_codec_s"] / n, 1e3 * r["adv_s"] / n,
                1e3 * r["adv_codec_s"] / n, 1e3 * r["iallreduce_s"] / n))
            print("%-34s r%d step %.1f | per step: hooks %d, progress %d, Testall %d, Testsome %d Isend+Irecv %d | ms: hooks %.2f (MPI tests %.2f, Isend+Irecv %.2f, posts %.2f) wait %.2f (MPI tests %.2f, Isend+Irecv %.2f) hook_mpi %.2f exposed %.2f codec %.2f" % (
                r["spec"][:34], r["rank"], 1e3 * np.median(r["steps"]), r["hooks"] // n, r["progress"] / n,
                r["testall"] / n, r["testsome"] / n, r["isends"] / n, 1e3 * r["hooks_s"] / n, 1e3 * r["test_hook_s"] / n, 1e3 * r["isend_hook_s"] / n, 1e3 * r["post_s"] / n, 1e3 * r["wait_s"] / n, 1e3 * r["test_wait_s"] / n, 1e3 * r["isend_wait_s"] / n,
                1e3 * (r["hook_mpi_seconds"] or 0), 1e3 * (r["exposed_comm_seconds"] or 0), 1e3 * (r["codec_seconds"] or 0)), flush=True)
