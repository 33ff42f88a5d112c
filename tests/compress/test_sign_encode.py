"""``sign_encode`` (error feedback's add, the chunk means and the packing in one pass
per chunk) gives the bits of the three separate kernels (add_l1, chunk_norms l1,
sign_pack) it replaces, and the values of its numpy twin."""
import numpy as np
import pytest

from dtnn.compress import kernels as K
from dtnn.compress import twins as T


def _three_kernels(mod, c, x, chunk, ef):
    n = c.size
    if x is not None:
        mod.add_l1(x, c)
    nc = -(-n // chunk)
    lens = np.full(nc, chunk, np.float32)
    lens[-1] = n - chunk * (nc - 1)
    values = (mod.chunk_norms(c, chunk, "l1") / lens).astype(np.float32)
    bits = mod.sign_pack(c, values, chunk, ef)
    return values, bits


@pytest.mark.parametrize("n,chunk", [(5003, 512), (4096, 8), (70001, 512), (3001, 3008),
                                     (20000, 16384), (9000, 8200)])
@pytest.mark.parametrize("ef,with_x", [(True, True), (False, False), (True, False)])
def test_sign_encode_same_bits_as_three_kernels(n, chunk, ef, with_x, isa_level):
    rng = np.random.default_rng(n + chunk)
    c0 = rng.standard_normal(n).astype(np.float32)
    c0[:600] = 0.0
    x = rng.standard_normal(n).astype(np.float32) if with_x else None
    for mod in (K, T):
        ref_c = c0.copy()
        values_ref, bits_ref = _three_kernels(mod, ref_c, x, chunk, ef)
        c = c0.copy()
        values = np.empty(-(-n // chunk), np.float32)
        bits = np.empty(-(-n // 8), np.uint8)
        mod.sign_encode(c, x, chunk, ef, values, bits)
        np.testing.assert_array_equal(values.view(np.uint32), values_ref.view(np.uint32))
        np.testing.assert_array_equal(bits, bits_ref)
        np.testing.assert_array_equal(c.view(np.uint32), ref_c.view(np.uint32))
    # compiled vs twin: the twin sums in float64 numpy order
    c, ct = c0.copy(), c0.copy()
    v, vt = np.empty(-(-n // chunk), np.float32), np.empty(-(-n // chunk), np.float32)
    b, bt = np.empty(-(-n // 8), np.uint8), np.empty(-(-n // 8), np.uint8)
    K.sign_encode(c, x, chunk, ef, v, b)
    T.sign_encode(ct, x, chunk, ef, vt, bt)
    np.testing.assert_allclose(v, vt, rtol=1e-5)
    np.testing.assert_array_equal(b, bt)
    np.testing.assert_allclose(c, ct, rtol=1e-5, atol=1e-5)
