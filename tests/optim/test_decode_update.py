"""The quantised ring's final decode fused into the SGD update (``dist.fuse_update``:
``decode_sgd_pieces``, C in csrc/decode_update.c, and its numpy twin).

Oracle: what the unfused step does -- ``kernels.decode_pieces`` into the flat gradient,
then the optimizer's ``sgd_update`` reading it -- bit for bit (parameters and momentum),
for every payload format ``decode_pieces`` takes, odd sizes, pieces with gaps and an
empty one, masks, momentum / Nesterov / dampening / weight decay, the first step, on
the avx512 / avx2 / generic paths.  ``HeldDecodes`` (how the exchange hands the payloads
to the update) against decode-then-update, and the divergence guard's proof."""
import numpy as np
import pytest

from dtnn.compress import Unit, build_compressor
from dtnn.compress import kernels as K
from dtnn.optim import _decode_update as DU
from dtnn.optim import _update as UP
from dtnn.optim.sgd import SGD
from dtnn.parallel.held import Held, HeldChunk, HeldDecodes

SPECS = ["int8", "qsgd:bits=8,chunk=100", "terngrad", "terngrad:chunk=0", "sign",
         "sign:chunk=40"]
#: (momentum, nesterov, weight_decay, dampening)
SGDS = [(0.0, False, 0.0, 0.0), (0.0, False, 5e-4, 0.0), (0.9, True, 5e-4, 0.0),
        (0.9, False, 0.0, 0.1), (0.9, False, 1e-3, 0.0)]


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


def _compiled():
    from dtnn._kernels import _fused
    return _fused.decode_sgd_pieces


def _case(spec, n, seed=0):
    """A payload of n elements and where its pieces lie in a flat vector (gaps between,
    one empty piece): (kind, chunk, levels, payload, bounds, offs, size)."""
    comp, ef = build_compressor(spec)
    comp.setup(2, 0, seed=3)
    u = Unit(5, n, [(0, (n,))])
    u.step = 2
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * 3).astype(np.float32)
    payload = comp.compress(x, u, np.zeros(n, np.float32) if ef else None).view(np.uint8)
    kind, chunk, levels = comp.hop_format(u, ef)[:3]
    cuts = sorted({0, n, *map(int, rng.integers(1, n, 4))})
    cuts.insert(2, cuts[1])
    bounds = np.array(cuts, np.int64)
    offs, at = [], 7
    for a, b in zip(cuts, cuts[1:]):
        offs.append(at)
        at += b - a + int(rng.integers(0, 9))      # a gap (the small tensors)
    return kind, chunk, levels, payload, bounds, np.array(offs, np.int64), at + 5


def _state(size, mom, seed=1):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(size).astype(np.float32)
    mask = (rng.random(size) < 0.7).astype(np.float32)
    buf = rng.standard_normal(size).astype(np.float32) if mom else None
    return p, mask, buf


def _args(mom, nesterov, wd, damp, first):
    return (-0.05, wd, mom, 1.0 - damp, nesterov, first)


def _reference(kind, chunk, levels, payload, n, bounds, offs, p, mask, buf, args, alpha):
    """The unfused step: decode into the flat gradient's pieces, update each piece."""
    g = np.full(p.size, np.nan, np.float32)
    pieces = [(int(bounds[k]), int(bounds[k + 1]), g[o:o + int(bounds[k + 1] - bounds[k])])
              for k, o in enumerate(offs)]
    K.decode_pieces(kind, payload, n, chunk, alpha, levels, pieces)
    sgd, _, _ = UP.kernels(p, g, mask)
    for k, o in enumerate(offs):
        sl = slice(int(o), int(o + bounds[k + 1] - bounds[k]))
        if sl.stop > sl.start:
            sgd(p[sl], g[sl], mask[sl], None if buf is None else buf[sl], *args)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("n", [3001, 20011])
@pytest.mark.parametrize("sgd", SGDS)
@pytest.mark.parametrize("first", [False, True])
def test_fused_same_bits_as_decode_then_update(spec, n, sgd, first, isa_level):
    from dtnn._kernels import _fused
    from dtnn._kernels.isa import LEVELS
    assert _fused.isa_active() <= LEVELS.index(isa_level)   # the cap reaches this module
    kind, chunk, levels, payload, bounds, offs, size = _case(spec, n)
    args = _args(*sgd, first)
    want = _state(size, sgd[0])
    _reference(kind, chunk, levels, payload, n, bounds, offs, *want, args, 0.5)
    for fn in (_compiled(), DU.decode_sgd_pieces):
        got = _state(size, sgd[0])
        fn(kind, payload, n, chunk, 0.5, levels, bounds, offs, *got, *args)
        for name, a, b in zip(("p", "mask", "buf"), want, got):
            if a is not None:
                np.testing.assert_array_equal(_bits(b), _bits(a), f"{spec} {name} {fn}")


@pytest.mark.parametrize("spec", ["terngrad", "int8"])
def test_fused_large_parallel_blocks(spec):
    """Pieces above the OpenMP threshold (blocks split over threads): same bits."""
    kind, chunk, levels, payload, bounds, offs, size = _case(spec, 300_001, seed=5)
    args = _args(0.9, True, 5e-4, 0.0, False)
    want = _state(size, 0.9)
    _reference(kind, chunk, levels, payload, 300_001, bounds, offs, *want, args, 0.25)
    got = _state(size, 0.9)
    _compiled()(kind, payload, 300_001, chunk, 0.25, levels, bounds, offs, *got, *args)
    np.testing.assert_array_equal(_bits(got[0]), _bits(want[0]))
    np.testing.assert_array_equal(_bits(got[2]), _bits(want[2]))


def test_fused_rejects_bad_input():
    kind, chunk, levels, payload, bounds, offs, size = _case("terngrad", 3001)
    p, mask, buf = _state(size, 0.9)
    fn = _compiled()
    args = _args(0.9, False, 0.0, 0.0, False)
    with pytest.raises(ValueError, match="payload"):
        fn(kind, payload[:-1], 3001, chunk, 0.5, levels, bounds, offs, p, mask, buf, *args)
    with pytest.raises(ValueError, match="outside p"):
        fn(kind, payload, 3001, chunk, 0.5, levels, bounds, offs + size, p, mask, buf, *args)
    with pytest.raises(ValueError, match="bounds"):
        fn(kind, payload, 3001, chunk, 0.5, levels, bounds[:-1], offs, p, mask, buf, *args)
    with pytest.raises(ValueError, match="kind"):
        fn("fp16", payload, 3001, chunk, 0.5, levels, bounds, offs, p, mask, buf, *args)


def _held_setup(spec, nesterov=True):
    kind, chunk, levels, payload, bounds, offs, size = _case(spec, 5003, seed=2)
    rng = np.random.default_rng(9)
    grads = rng.standard_normal(size).astype(np.float32)   # the gaps: small tensors
    ranges = [(int(o), int(o + bounds[k + 1] - bounds[k])) for k, o in enumerate(offs)
              if bounds[k + 1] > bounds[k]]
    chunks = [HeldChunk(kind, payload, 5003, chunk, levels, bounds, offs)]
    return grads, ranges, chunks, size


@pytest.mark.parametrize("spec", ["int8", "terngrad", "sign:chunk=40"])
@pytest.mark.parametrize("twins", [False, True])
def test_held_run_same_bits_as_materialize_then_step(spec, twins, monkeypatch):
    """SGD's RangeUpdate with its ``decoded`` kernel (compiled or twin) through
    ``HeldDecodes.run`` equals decoding into the gradient and ``step()``."""
    grads, ranges, chunks, size = _held_setup(spec)
    mask = (np.arange(size) % 3 != 0).astype(np.float32)
    out = []
    for fused in (False, True):
        p = np.linspace(-1, 1, size).astype(np.float32)
        g = grads.copy()
        opt = SGD(p, g, mask, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
        if twins:
            opt._decoded = DU.decode_sgd_pieces
        released = []
        for step in range(3):
            np.copyto(g, grads)
            held = HeldDecodes(g)
            held.hold(Held(ranges, chunks, 0.5, lambda: released.append(1)))
            if fused:
                held.run(opt.begin_step(), 0, size)
                assert not held and len(released) == step + 1
            else:
                held.materialize()
                opt.step()
        out.append((p, opt.momentum_buffer))
    np.testing.assert_array_equal(_bits(out[1][0]), _bits(out[0][0]))
    np.testing.assert_array_equal(_bits(out[1][1]), _bits(out[0][1]))


def test_held_update_without_kernel_materialises():
    """An update without ``decoded`` (Adam's) gets the gradient decoded first."""
    grads, ranges, chunks, size = _held_setup("terngrad")
    seen = []
    held = HeldDecodes(grads)
    held.hold(Held(ranges, chunks, 0.5))
    held.run(lambda lo, hi: seen.append(grads[lo:hi].copy()), 0, size)
    want = grads.copy()
    HeldDecodes(want).materialize()   # nothing held: unchanged
    ref = HeldDecodes(want)
    ref.hold(Held(ranges, chunks, 0.5))
    ref.materialize()
    np.testing.assert_array_equal(_bits(seen[0]), _bits(want))


def test_guard_proof():
    """``proves_finite``: a finite payload and gaps are proven (taken); a non-finite
    scale or a non-finite small tensor is not (nothing taken: the guard decodes and
    runs its own test)."""
    grads, ranges, chunks, size = _held_setup("terngrad")
    opt = SGD(np.zeros(size, np.float32), grads, np.ones(size, np.float32), lr=0.1)
    held = HeldDecodes(grads)
    held.hold(Held(ranges, chunks, 0.5))
    assert held.proves_finite(0, size, lambda lo, hi: None) is None   # no kernel
    items = held.proves_finite(0, size, opt.begin_step())
    assert items is not None and len(items) == 1 and not held
    bad = chunks[0].payload.copy()
    bad[:4] = np.array([np.inf], np.float32).view(np.uint8)
    held.hold(Held(ranges, [chunks[0]._replace(payload=bad)], 0.5))
    assert held.proves_finite(0, size, opt.begin_step()) is None and held
    held.materialize()
    assert not np.isfinite(grads).all()
    grads[:] = 1.0
    held.hold(Held(ranges, chunks, 0.5))
    grads[ranges[0][0] - 1] = np.nan                  # a small tensor in a gap
    assert held.proves_finite(0, size, opt.begin_step()) is None and held
