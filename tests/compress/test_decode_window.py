"""``decompress_window`` (the quantised ring and the allgather decode a window of a
payload straight into the flat gradient's pieces, or add it to a base read from them):
the same bits as the slice of the whole-unit decode (``decompress_set`` /
``decompress_add``, or copy + ``decompress_add`` for the base form), for windows that
start and end anywhere (inside a packed byte, inside a chunk), and the compiled kernel
gives the values of its numpy twin."""
import numpy as np
import pytest

from dtnn.compress import Unit, build_compressor
from dtnn.compress import kernels as K
from dtnn.compress import twins as T

SPECS = ["int8", "int8:stochastic=false", "qsgd:bits=8", "qsgd:bits=8,chunk=100",
         "terngrad", "terngrad:chunk=0", "terngrad:chunk=36", "sign", "sign:chunk=0",
         "sign:chunk=40"]


def _windows(n, rng):
    cuts = [(0, n), (0, 0), (n, n), (1, n - 3), (5, 6), (7, 9 + 512), (511, 1025)]
    cuts += [tuple(sorted(rng.integers(0, n + 1, 2))) for _ in range(12)]
    return [(int(a), int(b)) for a, b in cuts if 0 <= a <= b <= n]


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("n", [3001, 4096])
def test_window_same_bits_as_slice_of_whole_decode(spec, n):
    comp, _ = build_compressor(spec)
    assert comp.windowed
    comp.setup(4, 2, 11)
    unit = Unit(3, n, [(0, (n,))])
    unit.step = 5
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    x[100:700] = 0.0                      # zero chunks: scale 0
    x[100:700:3] = -0.0
    p = comp.compress(x, unit)
    base = rng.standard_normal(n).astype(np.float32)
    base[::7] = -0.0
    for alpha in (1.0, 0.25, -1.0):
        whole = np.empty(n, np.float32)
        comp.decompress_set(p, whole, alpha, unit)
        summed = base.copy()
        comp.decompress_add(p, summed, alpha, unit)
        for s, e in _windows(n, rng):
            got = np.full(e - s, np.nan, np.float32)
            comp.decompress_window(p, unit, s, e, got, alpha)
            np.testing.assert_array_equal(_bits(got), _bits(whole[s:e]), f"set [{s},{e})")
            got = base[s:e].copy()
            comp.decompress_window(p, unit, s, e, got, alpha, accumulate=True)
            np.testing.assert_array_equal(_bits(got), _bits(summed[s:e]), f"add [{s},{e})")
            got = np.full(e - s, np.nan, np.float32)
            comp.decompress_window(p, unit, s, e, got, alpha, base=base[s:e])
            np.testing.assert_array_equal(_bits(got), _bits(summed[s:e]), f"base [{s},{e})")


@pytest.mark.parametrize("kind", ["int8", "terngrad", "sign"])
def test_decode_window_kernel_matches_twin(kind, isa_level):
    n, chunk = 5000 + 3, 520
    rng = np.random.default_rng(1)
    per = {"int8": 1, "terngrad": 4, "sign": 8}[kind]
    if kind == "int8":
        codes = rng.integers(-127, 128, n).astype(np.int8)
    else:
        codes = rng.integers(0, 256, -(-n // per)).astype(np.uint8)
    scales = rng.random(-(-n // chunk)).astype(np.float32)
    scales[2] = 0.0
    base = rng.standard_normal(n).astype(np.float32)
    for s, e in _windows(n, rng):
        for form in ("set", "add", "base"):
            outs = []
            for mod in (K, T):
                out = base[s:e].copy() if form == "add" else np.zeros(e - s, np.float32)
                mod.decode_window(kind, codes, n, scales, chunk, 0.5, 127.0, s, e, out,
                                  base[s:e] if form == "base" else None, form == "add")
                outs.append(out)
            np.testing.assert_array_equal(outs[0], outs[1], f"{kind} {form} [{s},{e})")


def test_decode_window_rejects_bad_input():
    compiled = K.compiled()
    if compiled is None:
        pytest.skip("compiled kernels not built (the twins are the kernels)")
    n = 64
    codes = np.zeros(n // 8, np.uint8)
    scales = np.ones(1, np.float32)
    out = np.zeros(n, np.float32)
    with pytest.raises(ValueError, match="window"):
        compiled.decode_window("sign", codes, n, scales, 0, 1.0, 1.0, 10, 65, out)
    with pytest.raises(ValueError, match="overlap"):
        compiled.decode_window("sign", codes, n, scales, 0, 1.0, 1.0, 0, 32, out[:32],
                               out[16:48])
    with pytest.raises(ValueError, match="kind"):
        compiled.decode_window("fp16", codes, n, scales, 0, 1.0, 1.0, 0, 8, out[:8])
