# The final decode fused into the SGD update (dist.fuse_update), alone: one thread,
# vgg11_bn w0.5's 2.37 M gradient elements as one payload per format;
#   sep:   kernels.decode_pieces (alpha 1/2) into the flat gradient g, then the compiled
#          SGD update (momentum 0.9, nesterov, weight decay, a 0/1 mask) reading it: the
#          unfused step's order;
#   fused: decode_sgd_pieces (csrc/decode_update.c): decoded block by block in L1, g
#          not written;
# between repetitions a 64 MiB vector is streamed (the backward's traffic) so the
# payload, p, the mask and the momentum do not start in cache.  Alternated order, same
# bits checked.  Prints medians (and min) of REPS, ms.
import sys, time
import numpy as np
from dtnn.threads import set_threads; set_threads(1)
from dtnn.compress import kernels as K
from dtnn.compress.base import build_compressor, Unit
from dtnn.optim._decode_update import kernel
from dtnn.optim.sgd import SGD

n = 2_371_690 if len(sys.argv) < 2 else int(sys.argv[1])
reps = 25 if len(sys.argv) < 3 else int(sys.argv[2])
specs = sys.argv[3].split(",") if len(sys.argv) > 3 else ["terngrad", "sign", "int8"]
rng = np.random.default_rng(0)
x = rng.standard_normal(n).astype(np.float32)
mask = (rng.random(n) < 0.9).astype(np.float32)
big = np.ones(16 << 20, np.float32)
bounds, offs = np.array([0, n], np.int64), np.array([0], np.int64)


def make():
    p = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    g = np.zeros(n, np.float32)
    opt = SGD(p, g, mask, lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    opt.momentum_buffer[:] = 0.1
    opt.steps = 1
    return p, g, opt


for spec in specs:
    comp, ef = build_compressor(spec)
    comp.setup(2, 0, 0)
    u = Unit(0, n, [(0, (n,))]); u.step = 0
    payload = comp.compress(x, u, np.zeros(n, np.float32) if ef else None).view(np.uint8)
    kind, chunk, levels = comp.hop_format(u, ef)[:3]

    def sep(p, g, opt):
        K.decode_pieces(kind, payload, n, chunk, 0.5, levels, [(0, n, g)])
        opt.begin_step()(0, n)

    def fused(p, g, opt):
        opt.begin_step().decoded(kind, payload, n, chunk, 0.5, levels, bounds, offs)

    res = {"sep": [], "fused": []}
    state = {k: make() for k in res}
    assert kernel(state["fused"][0]) .__module__ != "dtnn.optim._decode_update", "twin"
    for r in range(reps):
        order = (("sep", sep), ("fused", fused)) if r % 2 else (("fused", fused), ("sep", sep))
        for name, fn in order:
            big += 1.0
            t = time.perf_counter()
            fn(*state[name])
            res[name].append(time.perf_counter() - t)
    same = all(np.array_equal(a, b) for a, b in
               ((state["sep"][0], state["fused"][0]),
                (state["sep"][2].momentum_buffer, state["fused"][2].momentum_buffer)))
    print("%-9s n %d reps %d: decode then update %.3f ms (min %.3f), fused %.3f ms (min %.3f);"
          " same bits %s" % (spec, n, reps, 1e3 * np.median(res["sep"]), 1e3 * min(res["sep"]),
                             1e3 * np.median(res["fused"]), 1e3 * min(res["fused"]), same),
          flush=True)
