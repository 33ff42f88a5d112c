# one qring hop on one chunk (n elements from 3 pieces of a flat gradient), 1 thread:
# the unfused path (decode_window with base into a scratch vector, then compress) vs the
# fused kernels.qring_hop; the first send (gather + compress vs qring_hop without pin);
# the final decode (decode_window per piece vs decode_pieces).  Medians of R repeats,
# alternating the two sides.  python micro.py [n] [R]
import sys, time
import numpy as np
from dtnn.threads import set_threads; set_threads(1)
from dtnn.compress import Unit, build_compressor
from dtnn.compress import kernels as K

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_200_000
R = int(sys.argv[2]) if len(sys.argv) > 2 else 40
rng = np.random.default_rng(0)
flat = rng.standard_normal(n + 4096).astype(np.float32)
cuts = [0, n // 3 // 512 * 512, 2 * n // 3 // 512 * 512, n]
pieces = [(a, b, flat[a + 1024:b + 1024]) for a, b in zip(cuts, cuts[1:])]
acc = np.empty(n, np.float32)


def med(f):
    ts = []
    for _ in range(R):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return 1e3 * float(np.median(ts))


for spec in ["terngrad", "sign", "int8"]:
    comp, ef = build_compressor(spec)
    comp.setup(2, 0, 0)
    u = Unit(1 << 20, n, [(0, (n,))])
    res = np.zeros(n, np.float32) if ef else None
    pin = comp.compress(rng.standard_normal(n).astype(np.float32), u, None)
    kind, chunk, levels, st, norm, _ = comp.hop_format(u, ef)

    def old_hop():
        for s, e, v in pieces:
            comp.decompress_window(pin, u, s, e, acc[s:e], 1.0, base=v)
        comp.compress(acc, u, res)

    def new_hop():
        K.qring_hop(kind, pin, n, chunk, levels, st, norm, comp.key(u), pieces, res)

    def old_first():
        for s, e, v in pieces:
            acc[s:e] = v
        comp.compress(acc, u, res)

    def new_first():
        K.qring_hop(kind, None, n, chunk, levels, st, norm, comp.key(u), pieces, res)

    outs = [(s, e, np.empty(e - s, np.float32)) for s, e, _ in pieces]

    def old_dec():
        for s, e, v in outs:
            comp.decompress_window(pin, u, s, e, v, 0.5)

    def new_dec():
        K.decode_pieces(kind, pin, n, chunk, 0.5, levels, outs)

    r = {}
    for name, f in [("hop", (old_hop, new_hop)), ("first", (old_first, new_first)),
                    ("decode", (old_dec, new_dec))]:
        a = b = 0.0
        for _ in range(2):   # alternate: old, new, old, new
            a += med(f[0]) / 2; b += med(f[1]) / 2
        r[name] = (a, b)
    print(f"{spec:9s} n={n} " + "  ".join(f"{k} {a:.3f} -> {b:.3f} ms" for k, (a, b) in r.items()),
          flush=True)
