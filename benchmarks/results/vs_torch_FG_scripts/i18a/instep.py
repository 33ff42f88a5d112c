"""In-step timestamps: wrap each layer's passes, run real steps (model.forward/backward,
loss, SGD), report per-call medians, the sum, the gaps, loss, opt, whole step."""
import sys, os, time, tempfile
sys.path.insert(0, "/work/wt/i18a/benchmarks")
import _isa_env  # noqa
import dtnn  # noqa
import numpy as np
os.environ["DTNN_TUNE_CACHE"] = tempfile.mkdtemp(prefix="i18a-tune-")
T_ = int(sys.argv[1]); reps = int(sys.argv[2]); spec = sys.argv[3] if len(sys.argv) > 3 else "vgg11_bn:width=0.5"
from dtnn.threads import set_threads
set_threads(T_)
from bench_vs_torch import dtnn_stepper, _settled, _activity, parse_model, torch_stepper
import dtnn.tune as TT
from dtnn.models import build_model
TT.configure(TT.TuneOptions())
name, opts, shape = parse_model(spec)
model = build_model(name, shape, 10, seed=0, **opts)
rng = np.random.default_rng(0)
x = rng.standard_normal((64,) + shape).astype(np.float32)
y = rng.integers(0, 10, 64).astype(np.int64)
from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.optim import build_optimizer
lossf = SoftmaxCrossEntropy(); opt = build_optimizer("sgd", model, lr=0.01, momentum=0.9)
def step():
    out = model.forward(x, training=True)
    v = lossf.forward(out, y)
    model.backward(lossf.backward())
    opt.step()
step(); before = None; n = 1
while not _settled(before) and n < 400:
    before = _activity(); step(); n += 1
print("tuned in", n, "steps", file=sys.stderr)
rec = []
def wrap(obj, meth, label):
    f = getattr(obj, meth)
    def g(*a, **k):
        t0 = time.perf_counter(); r = f(*a, **k); t1 = time.perf_counter()
        rec.append((label, t0, t1)); return r
    setattr(obj, meth, g)
for i, L in enumerate(model.layers):
    for m in ("forward", "backward", "forward_relu", "backward_relu"):
        if hasattr(L, m):
            wrap(L, m, f"{i}:{L.registry_name}.{m}")
wrap(lossf, "forward", "loss.f"); wrap(lossf, "backward", "loss.b"); wrap(opt, "step", "opt")
stats = {}; whole = []; gaps = []
torch_t = []
if "--torch" in sys.argv:
    from dtnn.export.torch_twin import torch_twin
    net = torch_twin(model); ts = torch_stepper(net, x, y); ts()
for r in range(reps + 1):
    rec.clear()
    t0 = time.perf_counter(); step(); t1 = time.perf_counter()
    if r == 0: continue
    whole.append(t1 - t0)
    top = []  # only top-level calls (non-nested)
    end = -1
    for lab, a, b in sorted(rec, key=lambda z: z[1]):
        if a >= end:
            top.append((lab, a, b)); end = b
    s = sum(b - a for _, a, b in top)
    gaps.append((t1 - t0) - s)
    for lab, a, b in top:
        stats.setdefault(lab, []).append(b - a)
    if "--torch" in sys.argv:
        a = time.perf_counter(); ts(); torch_t.append(time.perf_counter() - a)
med = lambda v: float(np.median(v)) * 1e3
tot = 0
for lab, v in stats.items():
    print(f"{lab:32s} {med(v):7.3f}  min {min(v)*1e3:7.3f}")
    tot += med(v)
print(f"sum of medians {tot:.2f}  gaps {med(gaps):.2f}  whole {med(whole):.2f} (min {min(whole)*1e3:.2f})" + (f" torch {med(torch_t):.2f}" if torch_t else ""))
