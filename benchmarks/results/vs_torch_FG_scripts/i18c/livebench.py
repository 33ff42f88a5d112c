import os, sys, time, numpy as np
import dtnn
from dtnn.threads import set_threads
n = int(sys.argv[1]); set_threads(n); reps = int(sys.argv[2]) if len(sys.argv) > 2 else 15
import torch; torch.set_num_threads(n)
from dtnn.conv import CONV_ALGORITHMS, ConvGeometry as G_
geoms = [G_(64, 32, 14, 14, 64, 3, 3, (1, 1), (1, 1)), G_(64, 64, 7, 7, 128, 3, 3, (1, 1), (1, 1)),
         G_(64, 128, 7, 7, 128, 3, 3, (1, 1), (1, 1)),
         G_(64, 128, 3, 3, 256, 3, 3, (1, 1), (1, 1)), G_(64, 256, 3, 3, 256, 3, 3, (1, 1), (1, 1))]
rng = np.random.default_rng(0)
tot = {}
for g in geoms:
    x = rng.standard_normal((g.N, g.C, g.H, g.W)).astype(np.float32)
    w = rng.standard_normal((g.K, g.C, 3, 3)).astype(np.float32) * 0.05
    dy = rng.standard_normal((g.N, g.K, g.H, g.W)).astype(np.float32)
    dw = np.empty_like(w)
    a = CONV_ALGORITHMS.get("im2col")()
    xt = torch.tensor(x, requires_grad=True); wt = torch.tensor(w, requires_grad=True); dyt = torch.tensor(dy)
    def run_torch():
        t0 = time.perf_counter(); y = torch.nn.functional.conv2d(xt, wt, padding=1); t1 = time.perf_counter()
        y.backward(dyt); t2 = time.perf_counter(); xt.grad = None; wt.grad = None; return t1 - t0, t2 - t1
    def runner(env):
        def f():
            os.environ["DTNN_FUSED_LIVE_MIN"] = env
            t0 = time.perf_counter(); a.forward(x, w, None, g); t1 = time.perf_counter()
            a.backward(dy, x, w, g, True, dw, None); t2 = time.perf_counter(); return t1 - t0, t2 - t1
        return f
    fns = {"chanmajor": runner("101"), "live": runner("0"), "torch": run_torch}
    res = {k: [] for k in fns}
    for rep in range(reps):
        for k, f in fns.items():
            res[k].append(f())
    line = []
    for k, v in res.items():
        fw = np.median([a_ for a_, b_ in v[3:]]) * 1e3; bw = np.median([b_ for a_, b_ in v[3:]]) * 1e3
        tot[k] = tot.get(k, 0) + fw + bw
        line.append(f"{k} {fw:.2f}/{bw:.2f}")
    print(f"{g.C}->{g.K} {g.H}x{g.W} t{n}: " + "  ".join(line), flush=True)
print(f"t{n} sum fwd+bwd: " + "  ".join(f"{k} {v:.2f}" for k, v in tot.items()), flush=True)
