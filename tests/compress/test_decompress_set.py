"""``decompress_set`` (the first decode writes instead of zero-fill + add) gives the same
bits as ``out.fill(0)`` + ``decompress_add``, for every compressor, including chunks
that decode to zero (a -0.0 written directly would differ from 0 + -0.0), and the compiled
kernels' write mode gives the bits of their twins'."""
import numpy as np
import pytest

from dtnn.compress import Unit, build_compressor
from dtnn.compress import kernels as K
from dtnn.compress import twins as T

SPECS = ["fp16", "bf16", "int8", "int8:stochastic=false", "qsgd:bits=8", "qsgd:bits=4,chunk=128",
         "terngrad", "terngrad:chunk=0", "sign", "sign:chunk=0", "topk:ratio=0.05",
         "randomk:ratio=0.1"]  # PowerSGD: the default (fill + add) after its rounds


def _unit():
    shapes = [(16, 40), (300,), (8, 3, 3, 3), (1024,)]
    tensors, off = [], 0
    for s in shapes:
        tensors.append((off, s))
        off += int(np.prod(s))
    return Unit(0, off, tensors)


def _x(n, seed):
    x = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    x[-1024:] = 0.0           # whole zero chunks: scales 0
    x[-1024::3] = -0.0
    return x


@pytest.mark.parametrize("spec", SPECS)
def test_decompress_set_same_bits_as_fill_then_add(spec):
    comp, _ = build_compressor(spec)
    comp.setup(2, 1, 7)
    unit = _unit()
    unit.step = 3
    for seed in range(3):
        x = _x(unit.size, seed)
        p = comp.compress(x.copy(), unit)
        ref = np.full(unit.size, 123.0, np.float32)
        ref.fill(0.0)
        comp.decompress_add(p, ref, 0.5, unit)
        got = np.full(unit.size, np.nan, np.float32)
        comp.decompress_set(p, got, 0.5, unit)
        np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))
        # and a second payload added on top: as the allgather's decode
        comp.decompress_add(p, ref, 0.5, unit)
        comp.decompress_add(p, got, 0.5, unit)
        np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))


def test_write_mode_kernels_never_write_negative_zero_and_match_twins():
    n, chunk = 4096 + 5, 512
    scales = np.zeros(-(-n // chunk), np.float32)
    scales[0] = 1.5
    q = np.random.default_rng(0).integers(-127, 128, n).astype(np.int8)
    bits = np.random.default_rng(1).integers(0, 256, -(-n // 8)).astype(np.uint8)
    tern = np.random.default_rng(2).integers(0, 256, -(-n // 4)).astype(np.uint8)
    cases = [
        (lambda mod, out: mod.dequantize_i8(q, chunk, scales, 127.0, 0.5, out, False)),
        (lambda mod, out: mod.sign_unpack(bits, n, scales, chunk, 0.5, out, False)),
        (lambda mod, out: mod.terngrad_dequantize(tern, n, scales, chunk, 0.5, out, False)),
    ]
    for f in cases:
        a = np.full(n, np.nan, np.float32)
        b = np.full(n, np.nan, np.float32)
        f(K, a)
        f(T, b)
        assert not np.any(a.view(np.uint32) == np.uint32(0x80000000))
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


def test_randomk_ranges_equal_staging_copy():
    comp, _ = build_compressor("randomk:ratio=0.1")
    comp.setup(2, 0, 5)
    unit = _unit()
    unit.step = 2
    ranges = [(3, 643), (700, 1000), (1010, 1226), (1300, 2324)]   # 640 + 300 + 216 + 1024
    assert sum(b - a for a, b in ranges) == unit.size
    flat = np.random.default_rng(4).standard_normal(2400).astype(np.float32)
    stage = np.concatenate([flat[a:b] for a, b in ranges])
    for ef in (False, True):
        r1 = np.random.default_rng(5).standard_normal(unit.size).astype(np.float32) if ef else None
        r2 = None if r1 is None else r1.copy()
        p1 = comp.compress(stage.copy(), unit, r1)
        p2 = comp.compress_ranges(flat, ranges, unit, r2)
        np.testing.assert_array_equal(p1.view(np.uint32), p2.view(np.uint32))
        if ef:
            np.testing.assert_array_equal(r1.view(np.uint32), r2.view(np.uint32))
        ref, got = flat.copy(), flat.copy()
        st = np.empty(unit.size, np.float32)
        comp.decompress_set(p1, st, 0.25, unit)
        o = 0
        for a, b in ranges:
            ref[a:b] = st[o:o + b - a]
            o += b - a
        comp.decompress_set_ranges(p2, got, ranges, 0.25, unit)
        np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))
