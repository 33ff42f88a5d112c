"""The quantised ring's fused hop (``kernels.qring_hop``: decode the incoming partial
sum, add our chunk read from the flat gradient's pieces, re-encode chunk by chunk in
L1) and its final decode into the pieces (``kernels.decode_pieces``).

Oracles: the unfused sequence the ring ran before (gather the pieces, ``decompress_add``,
``compress`` with the error-feedback residual): the same payload and residual bits, on
every ISA path; the numpy twin (the same sequence in numpy); and float64 numpy for what
the payload means (sign's error-feedback identity, int8's rounding bound, TernGrad's
scales and values)."""
import numpy as np
import pytest

from dtnn.compress import Unit, build_compressor
from dtnn.compress import kernels as K
from dtnn.compress import twins as T

SPECS = ["int8", "int8:stochastic=false", "qsgd:bits=8", "qsgd:bits=8,chunk=100",
         "terngrad", "terngrad:chunk=0", "terngrad:chunk=36", "sign", "sign:chunk=0",
         "sign:chunk=40", "sign:ef=false"]


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


def _setup(spec, n, seed=0):
    comp, ef = build_compressor(spec)
    comp.setup(2, 1, seed=7)
    u = Unit(3 << 20 | 1, n, [(0, (n,))])
    u.step = 11
    rng = np.random.default_rng(seed)
    flat = rng.standard_normal(n + 100).astype(np.float32)
    cuts = sorted({0, n, *map(int, rng.integers(0, n + 1, 5))})
    cuts.insert(2, cuts[1])                       # an empty piece
    pieces, at = [], 0
    for a, b in zip(cuts, cuts[1:]):
        pieces.append((a, b, flat[a + 50:b + 50]))
    ours = flat[50:50 + n].copy()
    other = (rng.standard_normal(n) * 2).astype(np.float32)
    pin = comp.compress(other, u, None)           # a partial sum from the left
    res = (rng.standard_normal(n) * 0.1).astype(np.float32) if ef else None
    return comp, ef, u, pieces, ours, pin, res


def _reference(comp, u, ours, pin, res):
    acc = ours.copy()
    if pin is not None:
        comp.decompress_add(pin, acc, 1.0, u)
    r = None if res is None else res.copy()
    return comp.compress(acc, u, r), r


def _hop(mod, comp, ef, u, pieces, pin, res):
    kind, chunk, levels, stochastic, norm, encodes = comp.hop_format(u, ef)
    assert encodes
    r = None if res is None else res.copy()
    out = mod.qring_hop(kind, pin, u.size, chunk, levels, stochastic, norm, comp.key(u),
                        pieces, r)
    return out, r


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("n", [3001, 20004])
@pytest.mark.parametrize("incoming", [True, False])
def test_hop_same_bits_as_unfused_sequence(spec, n, incoming, isa_level):
    comp, ef, u, pieces, ours, pin, res = _setup(spec, n)
    pin = pin if incoming else None
    fmt = comp.hop_format(u, ef)
    if fmt is None or not fmt[5]:
        assert spec.startswith("sign:chunk=0") and n > 8192
        return
    want, want_res = _reference(comp, u, ours, pin, res)
    got, got_res = _hop(K, comp, ef, u, pieces, pin, res)
    np.testing.assert_array_equal(got, want, f"{spec} payload")
    if res is not None:
        np.testing.assert_array_equal(_bits(got_res), _bits(want_res), f"{spec} residual")


@pytest.mark.parametrize("spec", SPECS)
def test_hop_twin_matches_kernel(spec):
    comp, ef, u, pieces, ours, pin, res = _setup(spec, 3001, seed=2)
    got, got_res = _hop(K, comp, ef, u, pieces, pin, res)
    twin, twin_res = _hop(T, comp, ef, u, pieces, pin, res)
    a, b = comp.decompress(got, u), comp.decompress(twin, u)
    if spec.startswith("sign"):   # the twin's chunk L1 sums in float64: the means may
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=0)   # differ in the last bit
    elif spec.startswith("qsgd"):  # likewise the L2 norms: a scale one ulp apart may
        nc = -(-u.size // comp._chunk(u))                  # move a rounding by one level
        np.testing.assert_allclose(got[:4 * nc].view(np.float32),
                                   twin[:4 * nc].view(np.float32), rtol=1e-6)
        d = np.abs(got[4 * nc:].view(np.int8).astype(int) - twin[4 * nc:].view(np.int8))
        assert d.max() <= 1 and np.count_nonzero(d) <= u.size // 100
    else:
        np.testing.assert_array_equal(got, twin)
    if res is not None:
        np.testing.assert_allclose(got_res, twin_res, rtol=1e-5, atol=1e-6)


def test_hop_payload_means_the_sum():
    """float64: sign's residual keeps what the payload dropped; int8 (nearest) is within
    half a step of the sum; TernGrad's scales are the chunks' max |sum| and its values are
    0 or +-scale."""
    n = 5003
    comp, ef, u, pieces, ours, pin, res = _setup("sign", n, seed=3)
    total = ours.astype(np.float64) + comp.decompress(pin, u).astype(np.float64)
    out, r = _hop(K, comp, ef, u, pieces, pin, res)
    np.testing.assert_allclose(comp.decompress(out, u).astype(np.float64) + r,
                               total + res, rtol=0, atol=1e-5)
    comp, ef, u, pieces, ours, pin, res = _setup("int8:stochastic=false", n, seed=3)
    total = ours.astype(np.float64) + comp.decompress(pin, u).astype(np.float64)
    out, _ = _hop(K, comp, ef, u, pieces, pin, None)
    step = np.abs(total).max() / 127.0
    assert np.abs(comp.decompress(out, u) - total).max() <= 0.5 * step * (1 + 1e-5)
    comp, ef, u, pieces, ours, pin, res = _setup("terngrad:chunk=512", n, seed=3)
    total = ours.astype(np.float64) + comp.decompress(pin, u).astype(np.float64)
    out, _ = _hop(K, comp, ef, u, pieces, pin, None)
    nc = -(-n // 512)
    scales = out[:4 * nc].view(np.float32)
    want = [np.abs(total[i:i + 512]).max() for i in range(0, n, 512)]
    np.testing.assert_allclose(scales, want, rtol=1e-6)
    dec = comp.decompress(out, u)
    per = np.repeat(scales, 512)[:n]
    assert np.all((dec == 0) | (np.abs(dec) == per))
    assert np.all(np.sign(dec[dec != 0]) == np.sign(total[dec != 0]))


@pytest.mark.parametrize("spec", ["int8", "qsgd:bits=8,chunk=100", "terngrad", "sign:chunk=40"])
def test_decode_pieces_same_bits_as_windows(spec, isa_level):
    comp, ef, u, pieces, ours, pin, res = _setup(spec, 3001, seed=4)
    kind, chunk, levels = comp.hop_format(u, ef)[:3]
    want = np.zeros(u.size, np.float32)
    comp.decompress_set(pin, want, 0.25, u)
    for mod in (K, T):
        outs = [(s, e, np.full(e - s, np.nan, np.float32)) for s, e, _ in pieces]
        mod.decode_pieces(kind, pin, u.size, chunk, 0.25, levels, outs)
        got = np.concatenate([v for _, _, v in outs])
        np.testing.assert_array_equal(_bits(got), _bits(want), f"{spec} {mod.__name__}")


def test_hop_rejects_bad_input():
    comp, ef, u, pieces, ours, pin, res = _setup("terngrad", 100)
    with pytest.raises(ValueError, match="tile"):
        K.qring_hop("terngrad", pin, 100, 512, 1.0, True, "max", 1, pieces[1:])
    with pytest.raises(ValueError, match="kind"):
        K.qring_hop("fp16", pin, 100, 512, 1.0, True, "max", 1, pieces)
    with pytest.raises(ValueError, match="pin"):
        K.qring_hop("terngrad", pin[:-1], 100, 104, 1.0, True, "max", 1, pieces)
    with pytest.raises(ValueError, match="residual"):
        K.qring_hop("terngrad", pin, 100, 104, 1.0, True, "max", 1, pieces,
                    np.zeros(100, np.float32))
