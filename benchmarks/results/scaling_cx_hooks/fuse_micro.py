# what fusing the final decode into the SGD update could save (an upper bound of the
# "extra pass" of the brief; no such kernel exists): one thread, vgg11_bn w0.5's
# 2.37 M gradient elements, a TernGrad payload of them;
#   sep:   the final decode (kernels.decode_pieces, alpha = 1/2) into g, then the fused
#          SGD update (momentum 0.9, weight decay, the compiled pass) over [0, n): the
#          synchronous step's order today;
#   block: the same two calls per block of BLOCK elements (decode_window into g[lo:hi],
#          then update(lo, hi)): g is still in L2 when the update reads it -- what a
#          decode+update kernel would do, plus a Python call pair per block;
# between repetitions a 64 MiB vector is streamed (the backward's traffic) so g, p and
# the momentum do not start in L2.  Same bits checked.  Prints medians of REPS, ms.
import sys, time
import numpy as np
from dtnn.threads import set_threads; set_threads(1)
from dtnn.compress import kernels as K
from dtnn.compress.base import build_compressor, Unit
from dtnn.optim.sgd import SGD

n = 2_371_690 if len(sys.argv) < 2 else int(sys.argv[1])
reps = 25 if len(sys.argv) < 3 else int(sys.argv[2])
block = 32768 if len(sys.argv) < 4 else int(sys.argv[3])
rng = np.random.default_rng(0)
x = rng.standard_normal(n).astype(np.float32)
comp, _ = build_compressor("terngrad")
comp.setup(2, 0, 0)
u = Unit(0, n, [(0, (n,))]); u.step = 0
payload = comp.compress_plain(x, u)
kind, chunk, levels, _, _, _ = comp.hop_format(u, False)
nc = (n + chunk - 1) // chunk
scales, codes = payload[:4 * nc].view(np.float32), payload[4 * nc:]
big = np.ones(16 << 20, np.float32)


def make():
    p = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    g = np.zeros(n, np.float32)
    opt = SGD(p, g, np.ones(n, np.float32), lr=0.01, momentum=0.9, weight_decay=5e-4)
    opt.momentum_buffer[:] = 0.1
    opt.steps = 1
    return p, g, opt


def sep(p, g, opt):
    K.decode_pieces(kind, payload, n, chunk, 0.5, levels, [(0, n, g)])
    opt.begin_step()(0, n)


def blocked(p, g, opt):
    upd = opt.begin_step()
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        K.decode_window(kind, codes, n, scales, chunk, 0.5, levels, lo, hi, g[lo:hi])
        upd(lo, hi)


res = {"sep": [], "block": []}
state = {k: make() for k in res}
for r in range(reps):
    for name, fn in (("sep", sep), ("block", blocked)) if r % 2 else (("block", blocked), ("sep", sep)):
        big += 1.0
        t = time.perf_counter()
        fn(*state[name])
        res[name].append(time.perf_counter() - t)
same = all(np.array_equal(a, b) for a, b in zip(state["sep"][:2], state["block"][:2]))
print("n %d block %d reps %d: decode+update separate %.3f ms, per block %.3f ms; same bits %s"
      % (n, block, reps, 1e3 * np.median(res["sep"]), 1e3 * np.median(res["block"]), same))
