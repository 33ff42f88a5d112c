import os, sys, time
import numpy as np
import dtnn
from dtnn.threads import set_threads, one_pool
T = int(sys.argv[1]); set_threads(T)
import torch
from dtnn import gemm
from dtnn.conv.batch_split import split_batch
N, C, K, H = 64, int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
P = H * H
rng = np.random.default_rng(0)
x = rng.standard_normal((N, C, P), dtype=np.float32)
w = rng.standard_normal((1, K, C), dtype=np.float32)
y = np.empty((N, K, P), np.float32)
def split():
    def images(lo, hi):
        np.matmul(w, x[lo:hi], out=y[lo:hi])
    split_batch(images, N, 2.0 * N * K * C * P)
def pool():
    gemm.matmul(w, x, out=y)
xt = torch.from_numpy(x.reshape(N, C, H, H)); wt = torch.from_numpy(w.reshape(K, C, 1, 1))
def tor():
    with torch.no_grad():
        torch.nn.functional.conv2d(xt, wt)
fns = dict(split=split, pool=pool, torch=tor)
res = {k: [] for k in fns}
for f in fns.values(): f(); f()
for r in range(7):
    for k, f in fns.items():
        t0 = time.perf_counter(); f(); f(); f(); res[k].append((time.perf_counter() - t0) / 3 * 1e3)
print(T, C, K, H, "one_pool", one_pool(), {k: round(float(np.median(v)), 2) for k, v in res.items()})
