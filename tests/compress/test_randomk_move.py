"""Random-k's move (#17): with error feedback the exchange lets ``compress`` move the
gradient into the residual (the input is left zero) and the decode skips its zero-fill.
Same payload, residual and decoded bits as accumulate-then-zero-fill."""
import numpy as np

from dtnn.compress import build_compressor
from dtnn.compress.base import Unit


def _setup(n=2180, seed=3):
    comp, ef = build_compressor("randomk:ratio=0.05")
    assert ef and comp.moves_input
    comp.setup(2, 1, 9)
    unit = Unit(4, n, [(0, (n,))])
    unit.step = 7
    rng = np.random.default_rng(seed)
    return (comp, unit, rng.standard_normal(n).astype(np.float32),
            rng.standard_normal(n).astype(np.float32))


def test_move_equals_accumulate_contiguous():
    comp, unit, x, r = _setup()
    x1, r1, x2, r2 = x.copy(), r.copy(), x.copy(), r.copy()
    p1 = comp.compress(x1, unit, r1)
    p2 = comp.compress(x2, unit, r2, move=True)
    np.testing.assert_array_equal(p1.view(np.uint32), p2.view(np.uint32))
    np.testing.assert_array_equal(r1.view(np.uint32), r2.view(np.uint32))
    np.testing.assert_array_equal(x1, x)                       # not moved: untouched
    assert not np.any(x2.view(np.uint32))                       # moved: +0.0 everywhere
    got, ref = x2, np.full_like(x, np.nan)                      # ref: garbage, zero-filled
    comp.decompress_set(p1, ref, 0.5, unit)
    comp.decompress_set(p2, got, 0.5, unit, zeroed=True)
    np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))


def test_move_equals_accumulate_ranges():
    comp, unit, _, r = _setup()
    ranges = [(5, 650), (700, 1001), (1003, 2237)]             # 645 + 301 + 1234 = 2180
    assert sum(b - a for a, b in ranges) == unit.size
    flat = np.random.default_rng(1).standard_normal(2300).astype(np.float32)
    f1, f2, r1, r2 = flat.copy(), flat.copy(), r.copy(), r.copy()
    p1 = comp.compress_ranges(f1, ranges, unit, r1)
    p2 = comp.compress_ranges(f2, ranges, unit, r2, move=True)
    np.testing.assert_array_equal(p1.view(np.uint32), p2.view(np.uint32))
    np.testing.assert_array_equal(r1.view(np.uint32), r2.view(np.uint32))
    np.testing.assert_array_equal(f1, flat)
    inside = np.zeros(flat.size, bool)
    for a, b in ranges:
        inside[a:b] = True
    assert not np.any(f2[inside].view(np.uint32))
    np.testing.assert_array_equal(f2[~inside], flat[~inside])  # outside the ranges: kept
    comp.decompress_set_ranges(p1, f1, ranges, 0.5, unit)
    comp.decompress_set_ranges(p2, f2, ranges, 0.5, unit, zeroed=True)
    np.testing.assert_array_equal(f1.view(np.uint32), f2.view(np.uint32))
