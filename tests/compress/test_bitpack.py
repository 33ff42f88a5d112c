"""Bit-packing kernels (compiled and numpy twin) and QSGD below 8 bits: layout,
round trips for every width and awkward lengths, compiled == twin byte for byte, the
fused dequantiser == unpack + dequantize_i8, packed payload sizes, unbiasedness."""
import numpy as np
import pytest

from dtnn.compress import Unit, build_compressor
from dtnn.compress import bitpack as BP
from dtnn.compress import bitpack_twins as T
from dtnn.compress import kernels as K

LENGTHS = [0, 1, 2, 7, 8, 9, 15, 17, 63, 64, 1001, 8192 * 2 + 3, 70001]  # 70001: threaded


def _impls():
    out = [pytest.param(T, id="twin")]
    mod = BP.compiled()
    out.append(pytest.param(mod, id="compiled", marks=pytest.mark.skipif(
        mod is None, reason="dtnn._kernels._compress is not built")))
    return out


IMPLS = _impls()


def _levels(n, bits, seed=0, full=True):
    """Random levels of the full two's-complement range (or QSGD's symmetric one)."""
    lo = -(1 << (bits - 1)) if full else -((1 << (bits - 1)) - 1)
    hi = (1 << (bits - 1)) - 1
    return np.random.default_rng(seed + 31 * bits + n).integers(lo, hi + 1, n).astype(np.int8)


def test_layout_known_answers():
    # 4 bits: +1 -> 0x1 in the low nibble, -1 -> 0xF in the high nibble
    assert T.pack_bits(np.array([1, -1], np.int8), 4).tolist() == [0xF1]
    # 3 bits: codes 1, 2, 3 at stream bits 0-2, 3-5, 6-8 -> 0b11_010_001, then 0
    assert T.pack_bits(np.array([1, 2, 3], np.int8), 3).tolist() == [0xD1, 0x00]
    # 2 bits, 8 elements fill exactly 2 bytes; -2 is the most negative level
    q = np.array([0, 1, -1, -2, 1, 0, 0, -1], np.int8)
    assert T.pack_bits(q, 2).tolist() == [0b10_11_01_00, 0b11_00_00_01]
    assert T.pack_bits(np.array([-1] * 3, np.int8), 1).tolist() == [0b111]
    for n in (0, 1, 8, 9, 1001):
        for bits in range(1, 9):
            assert T.packed_size(n, bits) == -(-n * bits // 8)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bits", range(1, 9))
def test_round_trip_every_width_and_length(impl, bits):
    for n in LENGTHS:
        q = _levels(n, bits)
        p = impl.pack_bits(q, bits)
        assert p.dtype == np.uint8 and p.size == T.packed_size(n, bits)
        if n * bits % 8:  # unused high bits of the last byte are zero
            assert int(p[-1]) >> (n * bits % 8) == 0
        np.testing.assert_array_equal(impl.unpack_bits(p, n, bits), q)
        out = np.full(n, 99, np.int8)
        assert impl.unpack_bits(p, n, bits, out=out) is out
        np.testing.assert_array_equal(out, q)
    if bits == 8:  # 8-bit packing is the int8 bytes themselves
        q = _levels(1001, 8)
        np.testing.assert_array_equal(impl.pack_bits(q, 8), q.view(np.uint8))


@pytest.mark.skipif(BP.compiled() is None, reason="dtnn._kernels._compress is not built")
@pytest.mark.parametrize("bits", range(1, 9))
def test_compiled_equals_twin_bytes(bits):
    C = BP.compiled()
    for n in LENGTHS:
        q = _levels(n, bits, seed=5)
        p = C.pack_bits(q, bits)
        np.testing.assert_array_equal(p, T.pack_bits(q, bits))
        # arbitrary bytes (every bit pattern) unpack alike
        raw = np.random.default_rng(n).integers(0, 256, p.size).astype(np.uint8)
        if n * bits % 8:
            raw[-1] &= (1 << (n * bits % 8)) - 1
        np.testing.assert_array_equal(C.unpack_bits(raw, n, bits), T.unpack_bits(raw, n, bits))
        # out-of-range levels keep their low bits, the same way in both
        wild = np.random.default_rng(n + 1).integers(-128, 128, n).astype(np.int8)
        np.testing.assert_array_equal(C.pack_bits(wild, bits), T.pack_bits(wild, bits))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bits", [2, 3, 4, 7, 8])
def test_fused_dequantize_equals_unpack_then_dequantize_i8(impl, bits):
    levels = float((1 << (bits - 1)) - 1)
    rng = np.random.default_rng(bits)
    for n, chunk in [(1, 1), (9, 4), (1001, 512), (1001, 1001), (70001, 37), (70001, 8192)]:
        q = _levels(n, bits, full=False)
        p = impl.pack_bits(q, bits)
        sc = (rng.random((n + chunk - 1) // chunk) * 3).astype(np.float32)
        sc[0] = 0.0
        for alpha, acc in [(1.0, False), (0.25, True), (-1.0, True)]:
            base = rng.standard_normal(n).astype(np.float32)
            want = K.dequantize_i8(q, chunk, sc, levels, alpha, base.copy(), acc)
            got = impl.dequantize_bits(p, n, bits, chunk, sc, levels, alpha, base.copy(), acc)
            np.testing.assert_array_equal(got, want)
        fresh = impl.dequantize_bits(p, n, bits, chunk, sc, levels)
        np.testing.assert_array_equal(fresh, K.dequantize_i8(q, chunk, sc, levels))


@pytest.mark.parametrize("impl", IMPLS)
def test_bad_arguments(impl):
    q = np.zeros(10, np.int8)
    for bits in (0, 9):
        with pytest.raises(ValueError):
            impl.pack_bits(q, bits)
    p = impl.pack_bits(q, 3)
    with pytest.raises(ValueError):
        impl.unpack_bits(p[:-1], 10, 3)  # too short
    with pytest.raises(ValueError):
        impl.unpack_bits(p, 11, 3)
    with pytest.raises(ValueError):
        impl.pack_bits(q.astype(np.int16), 3)
    with pytest.raises(ValueError):
        impl.dequantize_bits(p, 10, 3, 4, np.ones(2, np.float32), 3.0)  # needs 3 scales


# --- QSGD ------------------------------------------------------------------------------
def _unit():
    shapes = [(16, 40), (301,), (8, 3, 3, 3)]
    tensors, off = [], 0
    for s in shapes:
        tensors.append((off, s))
        off += int(np.prod(s))
    return Unit(0, off, tensors)


@pytest.mark.parametrize("bits", [2, 3, 4, 7])
@pytest.mark.parametrize("chunk", [512, 100, 0])
def test_qsgd_packed_payload_decodes_like_the_int8_levels(bits, chunk):
    comp, _ = build_compressor(f"qsgd:bits={bits},chunk={chunk}")
    comp.setup(2, 1, 3)
    unit = _unit()
    unit.step = 5
    n = unit.size
    x = np.random.default_rng(bits).standard_normal(n).astype(np.float32)
    p = comp.compress(x, unit)
    c = chunk or n
    nc = -(-n // c)
    assert p.dtype == np.uint8 and p.size == comp.payload_size(unit) == 4 * nc + -(-n * bits // 8)
    # the same levels as the unpacked path (same key, same norms)
    norms = p[:4 * nc].view(np.float32)
    np.testing.assert_array_equal(norms, K.chunk_norms(x, c, "l2"))
    q = K.quantize_i8(x, c, norms, comp.levels, comp.key(unit), True)
    np.testing.assert_array_equal(BP.unpack_bits(p[4 * nc:], n, bits), q)
    np.testing.assert_array_equal(comp.decompress(p, unit), K.dequantize_i8(q, c, norms,
                                                                            comp.levels))
    # error feedback: residual = (x + e) - decoded, exactly as with int8 levels
    e = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    e_ref = e + x
    p2 = comp.compress(x, unit, e)
    np.testing.assert_array_equal(e, e_ref - comp.decompress(p2, unit))


def test_qsgd_payload_ratio():
    unit = Unit(0, 512 * 64, [(0, (512, 64))])
    fp32 = 4 * unit.size
    sizes = {b: build_compressor(f"qsgd:bits={b}")[0].payload_size(unit) for b in (2, 4, 8)}
    assert sizes[8] == unit.size + 4 * 64
    assert sizes[4] == unit.size // 2 + 4 * 64 and 7.5 < fp32 / sizes[4] < 8
    assert sizes[2] == unit.size // 4 + 4 * 64 and 15 < fp32 / sizes[2] < 16


@pytest.mark.parametrize("bits", [2, 4])
def test_qsgd_packed_unbiased(bits):
    chunk, draws_n = 128, 600
    comp, _ = build_compressor(f"qsgd:bits={bits},chunk={chunk}")
    comp.setup(1, 0, 0)
    unit = Unit(0, 515, [(0, (515,))])
    x = np.random.default_rng(7).standard_normal(unit.size).astype(np.float32)
    draws = []
    for step in range(draws_n):
        unit.step = step
        draws.append(comp.decompress(comp.compress(x, unit), unit))
    draws = np.asarray(draws, np.float64)
    # element i takes the two levels around |x| s / norm with probabilities p, 1 - p:
    # its exact standard deviation is norm / s * sqrt(p (1 - p))
    s = comp.levels
    norm = np.repeat(K.chunk_norms(x, chunk, "l2").astype(np.float64), chunk)[:x.size]
    v = np.abs(x.astype(np.float64)) * s / norm
    p = v - np.floor(v)
    sd = norm / s * np.sqrt(p * (1 - p))
    err = np.abs(draws.mean(axis=0) - x)
    assert np.mean(err <= 5 * sd / np.sqrt(draws_n) + 1e-6 * norm) > 0.99
    rng = np.random.default_rng(0)
    for _ in range(5):
        w = rng.standard_normal(x.size)
        proj = draws @ w
        bound = 5 * np.sqrt(np.sum((w * sd) ** 2) / draws_n)
        assert abs(proj.mean() - float(x @ w)) <= bound


def test_qsgd_twin_bitpack_gives_identical_payloads(monkeypatch):
    unit = _unit()
    x = np.random.default_rng(3).standard_normal(unit.size).astype(np.float32)
    comp, _ = build_compressor("qsgd:bits=3,chunk=64")
    comp.setup(2, 0, 0)
    p = comp.compress(x, unit)
    y = comp.decompress(p, unit)
    for name in T.KERNELS:
        monkeypatch.setattr(BP, name, getattr(T, name))
    np.testing.assert_array_equal(comp.compress(x, unit), p)
    np.testing.assert_array_equal(comp.decompress(p, unit), y)
