"""Sign's compress_pieces (#17): the qring encodes our chunk straight from the flat
gradient's ranges.  Same payload and residual bits as compressing the concatenation;
None (the caller gathers) when a piece starts off a chunk boundary."""
import numpy as np
import pytest

from dtnn.compress import build_compressor
from dtnn.compress.base import Unit


def _pieces(x, cuts):
    b = [0, *cuts, x.size]
    return [(s, e, x[s:e]) for s, e in zip(b[:-1], b[1:])]


@pytest.mark.parametrize("ef", [False, True])
@pytest.mark.parametrize("n,cuts", [(2600, [512, 1536, 2048]), (5000, [1024]),
                                    (1500, [512, 1024])])
def test_pieces_equal_concatenation(ef, n, cuts):
    comp, _ = build_compressor("sign" if ef else "sign:ef=false")
    comp.setup(2, 0, 3)
    unit = Unit(2, n, [(0, (n,))])
    unit.step = 5
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    r1 = rng.standard_normal(n).astype(np.float32) if ef else None
    r2 = None if r1 is None else r1.copy()
    ref = comp.compress(x.copy(), unit, r1)
    # the pieces are views of separate buffers, as the flat gradient's ranges are
    got = comp.compress_pieces([(s, e, v.copy()) for s, e, v in _pieces(x, cuts)], unit, r2)
    np.testing.assert_array_equal(got, ref)
    if ef:
        np.testing.assert_array_equal(r1.view(np.uint32), r2.view(np.uint32))


def test_unaligned_piece_is_refused():
    comp, _ = build_compressor("sign:ef=false")
    unit = Unit(0, 2048, [(0, (2048,))])
    x = np.ones(2048, np.float32)
    assert comp.compress_pieces(_pieces(x, [700]), unit) is None
    assert comp.compress_pieces(_pieces(x, [512]), unit) is not None
