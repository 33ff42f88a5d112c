"""A/B in one process: whole training steps with Model flags toggled, alternating rounds."""
import sys, os, time, tempfile
sys.path.insert(0, "/work/wt/i18a/benchmarks")
import _isa_env  # noqa
import dtnn  # noqa
import numpy as np
os.environ["DTNN_TUNE_CACHE"] = tempfile.mkdtemp(prefix="i18a-tune-")
T_ = int(sys.argv[1]); rounds = int(sys.argv[2]); steps = int(sys.argv[3]); spec = sys.argv[4]
flags = sys.argv[5].split(",")     # e.g. fuse_bn_relu_pool
from dtnn.threads import set_threads
set_threads(T_)
from bench_vs_torch import dtnn_stepper, _settled, _activity, parse_model, torch_stepper
import dtnn.tune as TT
from dtnn.models import build_model
from dtnn.models.model import Model
TT.configure(TT.TuneOptions())
name, opts, shape = parse_model(spec)
model = build_model(name, shape, 10, seed=0, **opts)
rng = np.random.default_rng(0)
x = rng.standard_normal((64,) + shape).astype(np.float32)
y = rng.integers(0, 10, 64).astype(np.int64)
step = dtnn_stepper(model, x, y)
step(); before = None; n = 1
while not _settled(before) and n < 400:
    before = _activity(); step(); n += 1
from dtnn.export.torch_twin import torch_twin
net = torch_twin(model); ts = torch_stepper(net, x, y); ts()
def setf(v):
    for f in flags:
        setattr(model, f, v)
res = {"on": [], "off": [], "torch": []}
for r in range(rounds):
    for lab in ("on", "off", "torch"):
        time.sleep(0.05)
        if lab == "torch":
            fn = ts
        else:
            setf(lab == "on"); fn = step; fn()
        t0 = time.perf_counter()
        for _ in range(steps): fn()
        res[lab].append((time.perf_counter() - t0) / steps * 1e3)
setf(True)
med = {k: float(np.median(v)) for k, v in res.items()}
print(f"{spec} T={T_} tuned {n}: on {med['on']:.2f} off {med['off']:.2f} torch {med['torch']:.2f} | on/torch {med['on']/med['torch']:.3f} off/torch {med['off']/med['torch']:.3f} | rounds on " + " ".join(f"{v:.1f}" for v in res['on']) + " off " + " ".join(f"{v:.1f}" for v in res['off']) + " torch " + " ".join(f"{v:.1f}" for v in res['torch']))
