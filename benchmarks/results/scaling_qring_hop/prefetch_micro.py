# qring_hop with and without a software prefetch of the next chunk (prefetch_experiment.patch applied
# to csrc/compress.c, NOT on main: DTNN_HOP_PREFETCH=1 switches it per call); cold cache (64 MiB written
# between calls), 1.2 M elements in 3 pieces, 1 thread, medians of 25, alternated
import os, time
import numpy as np
from dtnn.threads import set_threads; set_threads(1)
from dtnn.compress import Unit, build_compressor
from dtnn.compress import kernels as K
n = 1_200_000; R = 25
rng = np.random.default_rng(0)
flat = rng.standard_normal(n + 4096).astype(np.float32)
junk = np.ones(64 << 20 >> 2, np.float32)
cuts = [0, n // 3 // 512 * 512, 2 * n // 3 // 512 * 512, n]
pieces = [(a, b, flat[a + 1024:b + 1024]) for a, b in zip(cuts, cuts[1:])]
for spec in ["terngrad", "sign", "int8:chunk=512" if False else "qsgd:bits=8"]:
    comp, ef = build_compressor(spec); comp.setup(2, 0, 0)
    u = Unit(1 << 20, n, [(0, (n,))])
    res = np.zeros(n, np.float32) if ef else None
    pin = comp.compress(rng.standard_normal(n).astype(np.float32), u, None)
    kind, chunk, levels, st, norm, _ = comp.hop_format(u, ef)
    def run(pf, first):
        os.environ["DTNN_HOP_PREFETCH"] = pf
        ts = []
        for _ in range(R):
            np.add(junk, 1.0, out=junk)
            t = time.perf_counter()
            K.qring_hop(kind, None if first else pin, n, chunk, levels, st, norm, comp.key(u), pieces, res)
            ts.append(time.perf_counter() - t)
        return 1e3 * np.median(ts)
    out = []
    for first in (False, True):
        a = [run("0", first), run("1", first), run("0", first), run("1", first)]
        out.append("%s: no-prefetch %.3f %.3f prefetch %.3f %.3f" % ("first" if first else "hop", a[0], a[2], a[1], a[3]))
    print(spec, " | ".join(out), flush=True)
