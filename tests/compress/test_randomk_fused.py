"""random-k's one-pass encode (csrc/randomk.c and its numpy twin) against the plain
float32 maths written out here (residual += x, take and zero the sampled entries, map
them into the flat vector): the same bits, since every element gets one float add."""
import numpy as np
import pytest

from dtnn.compress import build_compressor, randomk_twins
from dtnn.compress.base import Unit

try:
    from dtnn._kernels import _summable
except ImportError:  # pragma: no cover - the suite builds the extensions
    _summable = None

IMPLS = [pytest.param(randomk_twins, id="numpy"),
         pytest.param(_summable, id="compiled", marks=pytest.mark.skipif(
             _summable is None, reason="dtnn._kernels._summable not built"))]

#: several 16 K-element blocks, a partial one, an empty range and a one-element range
RANGES = [(3, 20003), (20010, 20010), (20011, 20012), (20100, 61000)]


def _oracle(res, flat, ranges, idx, move):
    res, flat = res.copy(), flat.copy()
    unit_pos = np.concatenate([np.arange(a, b) for a, b in ranges])   # unit -> flat
    res += flat[unit_pos]
    if move:
        flat[unit_pos] = 0.0
    payload = res[idx].copy()
    res[idx] = 0.0
    return res, flat, payload, unit_pos[idx].astype(np.int32)


def _case(seed, k):
    rng = np.random.default_rng(seed)
    n = sum(b - a for a, b in RANGES)
    flat = rng.standard_normal(61050).astype(np.float32)
    res = rng.standard_normal(n).astype(np.float32)
    idx = np.sort(rng.choice(n, size=k, replace=False)).astype(np.int32)
    starts = np.array([a for a, _ in RANGES], np.int64)
    lens = np.array([b - a for a, b in RANGES], np.int64)
    return flat, res, idx, starts, lens


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("move", [True, False])
@pytest.mark.parametrize("k", [0, 1, 613])
def test_rk_encode_same_bits_as_plain_maths(impl, move, k):
    flat, res, idx, starts, lens = _case(k + 11, k)
    want = _oracle(res, flat, RANGES, idx, move)
    payload = np.full(k, np.nan, np.float32)
    flat_idx = np.full(k, -1, np.int32)
    impl.rk_encode(res, flat, starts, lens, idx, payload, flat_idx, move)
    for got, exp, what in zip((res, flat, payload, flat_idx), want,
                              ("residual", "flat", "payload", "flat indices")):
        np.testing.assert_array_equal(got.view(np.uint32) if got.dtype == np.float32 else got,
                                      exp.view(np.uint32) if exp.dtype == np.float32 else exp,
                                      err_msg=what)


@pytest.mark.parametrize("impl", IMPLS)
def test_rk_encode_rejects_bad_indices(impl):
    flat, res, idx, starts, lens = _case(1, 5)
    for bad in (idx[::-1].copy(), np.array([0, 0, 1, 2, 3], np.int32),
                np.array([1, 2, 3, 4, res.size], np.int32)):
        with pytest.raises(ValueError):
            impl.rk_encode(res.copy(), flat.copy(), starts, lens, bad,
                           np.empty(5, np.float32), np.empty(5, np.int32), True)


def test_randomk_compress_ranges_same_bits_as_numpy_form():
    """The compressor on the fused kernel == residual += x range by range, then gather
    and zero (the numpy form it replaces), and its decode's flat indices."""
    comp, ef = build_compressor("randomk:ratio=0.02")
    assert ef
    comp.setup(2, 0, 5)
    n = sum(b - a for a, b in RANGES)
    unit = Unit(1, n, [(0, (n,))])
    unit.step = 3
    rng = np.random.default_rng(2)
    flat = rng.standard_normal(61050).astype(np.float32)
    res = rng.standard_normal(n).astype(np.float32)
    idx = comp.indices(unit)
    want = _oracle(res, flat, RANGES, idx, True)
    f, r = flat.copy(), res.copy()
    payload = comp.compress_ranges(f, RANGES, unit, r, move=True)
    np.testing.assert_array_equal(payload, want[2])
    np.testing.assert_array_equal(r, want[0])
    np.testing.assert_array_equal(f, want[1])
    comp.decompress_set_ranges(payload, f, RANGES, 0.5, unit, zeroed=True)
    dec = want[1].copy()
    dec[want[3]] += np.float32(0.5) * payload
    np.testing.assert_array_equal(f, dec)
