"""Compiled compression kernels vs their numpy twins (exact unless stated), and the
statistics the quantisers promise (unbiasedness, variance bound)."""
import numpy as np
import pytest

from dtnn.compress import twins as T

C = pytest.importorskip("dtnn._kernels._compress")

SIZES = [1, 7, 8, 9, 1000, 70001]
#: the kernels' compiled paths: tests taking ``isa_level`` run once per path (conftest.py);
#: the RNG, TernGrad / sign packing and unpacking have an AVX-512 clone as well
ISA_LEVELS = ("avx512", "avx2", "generic")


def _data(n, seed=0, spread=True):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(np.float32)
    if spread:
        x *= rng.choice(np.array([1e-9, 1e-4, 1.0, 300.0, 6e4], np.float32), n)
    return x


def test_uniform_matches_twin(isa_level):
    for key in (0, 1, 2**63 + 5, 2**64 - 1):
        np.testing.assert_array_equal(C.uniform(50001, key), T.uniform(50001, key))
    u = C.uniform(200000, 42)
    assert 0.0 <= u.min() and u.max() < 1.0
    assert not np.array_equal(u[:1000], C.uniform(1000, 43))


def _corr(a, b):
    return float(np.corrcoef(a.astype(np.float64), b.astype(np.float64))[0, 1])


@pytest.mark.parametrize("key", [0, 1, 2**40, 2**64 - 1])
def test_uniform_statistics(key):
    """Mean 1/2, variance 1/12, 16-bin histogram flat, no correlation between
    neighbouring indices (lags 1, 2, 4, 8, and elements 2j / 2j + 1), nor between the
    streams of nearby keys at the same index.  Bounds: 5 standard errors (n = 2^20)."""
    n = 1 << 20
    u = C.uniform(n, key).astype(np.float64)
    se = 1.0 / np.sqrt(n)
    assert abs(u.mean() - 0.5) < 5 * se * np.sqrt(1 / 12)
    assert abs(u.var() - 1 / 12) < 5 * se * np.sqrt(1 / 180)  # sd of (u - 1/2)^2
    counts = np.bincount((u * 16).astype(np.int64), minlength=16)
    chi2 = float(((counts - n / 16) ** 2 / (n / 16)).sum())
    assert chi2 < 50  # 15 degrees of freedom: P(chi2 > 50) ~ 1e-5
    for lag in (1, 2, 4, 8):
        assert abs(_corr(u[:-lag], u[lag:])) < 5 * se
    assert abs(_corr(u[0::2], u[1::2])) < 5 * se * np.sqrt(2)
    for other in (key ^ 1, (key + 1) & (2**64 - 1), key ^ (1 << 63)):
        assert abs(_corr(u, C.uniform(n, other))) < 5 * se


def test_uniform_pairs_fill_the_square():
    """(u[i], u[i + 1]) over a 32 x 32 grid: chi-square with 1023 degrees of freedom."""
    n = 1 << 21
    u = C.uniform(n + 1, 7)
    cell = (u[:-1] * 32).astype(np.int64) * 32 + (u[1:] * 32).astype(np.int64)
    counts = np.bincount(cell, minlength=1024)
    chi2 = float(((counts - n / 1024) ** 2 / (n / 1024)).sum())
    assert chi2 < 1023 + 6 * np.sqrt(2 * 1023)


@pytest.mark.parametrize("n", SIZES)
def test_half_conversions(n, isa_level):
    x = _data(n)
    if n >= 9:
        x[:6] = [0.0, -0.0, np.inf, -np.inf, np.nan, 7e4]
    for scale in (1.0, 0.25):
        np.testing.assert_array_equal(C.f32_to_f16(x, scale), T.f32_to_f16(x, scale))
        np.testing.assert_array_equal(C.f32_to_bf16(x, scale), T.f32_to_bf16(x, scale))
    h = np.arange(65536, dtype=np.uint16)
    np.testing.assert_array_equal(C.f16_to_f32(h, 0.5), T.f16_to_f32(h, 0.5))
    np.testing.assert_array_equal(C.bf16_to_f32(h, 0.5), T.bf16_to_f32(h, 0.5))
    out1, out2 = _data(65536, 3), _data(65536, 3)
    C.f16_to_f32(h[:30000], 2.0, out1[:30000], True)
    T.f16_to_f32(h[:30000], 2.0, out2[:30000], True)
    np.testing.assert_array_equal(out1, out2)


def test_fp16_is_correctly_rounded():
    x = _data(100000, 5, spread=False) * np.float32(100)
    h = C.f32_to_f16(x)
    np.testing.assert_array_equal(h.view(np.float16), x.astype(np.float16))


@pytest.mark.parametrize("kind", ["l2", "max", "l1"])
@pytest.mark.parametrize("chunk", [1, 31, 33, 512, 10000, 70001])
def test_chunk_norms(kind, chunk, isa_level):
    """max is exact; the sums use float partials of 16 terms combined in double
    (relative error <= ~16 * 2^-24 = 1e-6 for non-negative terms, plus the final
    rounding to float32), so 1e-5 relative to the float64 twin."""
    x = _data(70001, 1, spread=False)
    a, b = C.chunk_norms(x, chunk, kind), T.chunk_norms(x, chunk, kind)
    if kind == "max":
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-5)


@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_chunk_norms_sum_accuracy_and_threads(kind):
    """Wide dynamic range and one big chunk (many blocks): still 1e-5 relative, and
    the same bits with 1 and 2 threads (fixed summation order)."""
    from threadpoolctl import threadpool_limits

    x = _data(300001, 21)
    b = T.chunk_norms(x, x.size, kind)
    with threadpool_limits(limits=1, user_api="openmp"):
        a1 = C.chunk_norms(x, x.size, kind)
    with threadpool_limits(limits=2, user_api="openmp"):
        a2 = C.chunk_norms(x, x.size, kind)
    np.testing.assert_allclose(a1, b, rtol=1e-5)
    np.testing.assert_array_equal(a1, a2)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("stochastic", [True, False])
def test_quantize_dequantize_i8(n, stochastic, isa_level):
    x = _data(n, 2, spread=False)
    chunk = 512
    scales = T.chunk_norms(x, chunk, "l2")
    q1 = C.quantize_i8(x, chunk, scales, 127.0, 99, stochastic)
    q2 = T.quantize_i8(x, chunk, scales, 127.0, 99, stochastic)
    np.testing.assert_array_equal(q1, q2)
    np.testing.assert_array_equal(C.dequantize_i8(q1, chunk, scales, 127.0, 0.5),
                                  T.dequantize_i8(q1, chunk, scales, 127.0, 0.5))
    o1, o2 = x.copy(), x.copy()
    C.dequantize_i8(q1, chunk, scales, 127.0, -1.0, o1, True)
    T.dequantize_i8(q1, chunk, scales, 127.0, -1.0, o2, True)
    np.testing.assert_array_equal(o1, o2)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("chunk", [0, 4, 512])
def test_terngrad(n, chunk, isa_level):
    x = _data(n, 3, spread=False)
    ch = chunk if 0 < chunk < n else max(4, ((n + 3) // 4) * 4)
    s = T.chunk_norms(x, ch, "max")
    p1, p2 = C.terngrad_quantize(x, s, chunk, 7), T.terngrad_quantize(x, s, chunk, 7)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(C.terngrad_dequantize(p1, n, s, chunk, 0.5),
                                  T.terngrad_dequantize(p1, n, s, chunk, 0.5))
    o1, o2 = _data(n, 8), _data(n, 8)
    C.terngrad_dequantize(p1, n, s, chunk, 0.5, o1, True)
    T.terngrad_dequantize(p1, n, s, chunk, 0.5, o2, True)
    np.testing.assert_array_equal(o1, o2)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("chunk", [0, 8, 512])
def test_sign(n, chunk, isa_level):
    x, e = _data(n, 4), _data(n, 5)
    e1, e2 = e.copy(), e.copy()
    l1a, l1b = C.add_l1(x, e1), T.add_l1(x, e2)
    np.testing.assert_array_equal(e1, e2)
    assert l1a == pytest.approx(l1b, rel=1e-5)  # float partials, see test_chunk_norms
    assert C.add_l1(None, e1) == pytest.approx(T.add_l1(None, e2), rel=1e-5)
    ch = chunk if 0 < chunk < n else max(8, ((n + 7) // 8) * 8)
    v = (T.chunk_norms(e2, ch, "l1") / ch).astype(np.float32)
    b1, b2 = C.sign_pack(e1, v, chunk, True), T.sign_pack(e2, v, chunk, True)
    np.testing.assert_array_equal(b1, b2)
    np.testing.assert_array_equal(e1, e2)
    o1, o2 = _data(n, 6), _data(n, 6)
    C.sign_unpack(b1, n, v, chunk, 0.3, o1, True)
    T.sign_unpack(b1, n, v, chunk, 0.3, o2, True)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(C.sign_unpack(b1, n, v, chunk, 0.5),
                                  T.sign_unpack(b1, n, v, chunk, 0.5))


@pytest.mark.parametrize("n", [1, 9, 1000, 70001])
@pytest.mark.parametrize("frac", [0.001, 0.01, 0.5, 1.0])
def test_topk_matches_twin_and_is_topk(n, frac, isa_level):
    k = max(1, int(frac * n))
    x = _data(n, 6)
    c = np.round(_data(n, 7, spread=False) * 4).astype(np.float32)  # many ties
    c1, c2 = c.copy(), c.copy()
    i1, v1 = C.topk(c1, k, x, True)
    i2, v2 = T.topk(c2, k, x, True)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(c1, c2)
    full = c + x
    assert len(i1) == k and np.all(np.diff(i1) > 0)
    rest = np.delete(np.abs(full), i1)
    assert rest.size == 0 or np.abs(v1).min() >= rest.max()
    np.testing.assert_array_equal(v1, full[i1])
    assert np.all(c1[i1] == 0)


def _check_topk(c, k, x, zero):
    c1, c2 = c.copy(), c.copy()
    i1, v1 = C.topk(c1, k, x, zero)
    i2, v2 = T.topk(c2, k, x, zero)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(c1, c2)


@pytest.mark.parametrize("zero", [True, False])
@pytest.mark.parametrize("with_x", [True, False])
def test_topk_sampled_path_and_fallbacks(zero, with_x):
    """n large enough for the sampled threshold: ordinary data; all magnitudes equal
    (too many candidates: collection stops, fallback); the largest values exactly at
    the sampled positions (fewer than k candidates: fallback); zeros; k = 1, n - 1."""
    n = 200003
    x = _data(n, 30, spread=False) if with_x else None
    base = _data(n, 31, spread=False)
    _check_topk(base, 2000, x, zero)
    _check_topk(np.where(base < 0, -1.0, 1.0).astype(np.float32), 2000, None, zero)
    planted = (base * np.float32(1e-3)).astype(np.float32)
    planted[:: n // 4096] = np.arange(1, planted[:: n // 4096].size + 1, dtype=np.float32)
    planted[:: n // 4096] += np.float32(1e3)
    _check_topk(planted, 2000, None, zero)
    sparse = np.where(np.arange(n) % 7 == 0, base, 0).astype(np.float32)
    _check_topk(sparse, 40000, x, zero)
    for k in (1, n - 1):
        _check_topk(base, k, x, zero)


def test_scatter_add_and_gather():
    rng = np.random.default_rng(8)
    n = 50000
    idx = np.sort(rng.choice(n, 3000, replace=False)).astype(np.int32)
    val = _data(3000, 9)
    o1, o2 = _data(n, 10), _data(n, 10)
    np.testing.assert_array_equal(C.scatter_add(idx, val, 0.5, o1), T.scatter_add(idx, val, 0.5, o2))
    x = _data(n, 11)
    c1, c2 = o1.copy(), o1.copy()
    np.testing.assert_array_equal(C.gather(c1, idx, x, True), T.gather(c2, idx, x, True))
    np.testing.assert_array_equal(c1, c2)
    with pytest.raises(ValueError):
        C.scatter_add(np.array([n], np.int32), val[:1], 1.0, o1)


# --- statistics ---------------------------------------------------------------------------
def _draws(fn, x, reps):
    return np.stack([fn(x, key) for key in range(reps)])


def _check_unbiased(draws, x):
    """Projection on random directions: |mean - <x, v>| within 5 standard errors."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        v = rng.standard_normal(x.size)
        proj = draws.astype(np.float64) @ v
        se = proj.std(ddof=1) / np.sqrt(len(proj))
        assert abs(proj.mean() - float(x @ v)) <= 5 * se + 1e-9 * abs(float(x @ v))
    per_elem = np.abs(draws.mean(axis=0) - x)
    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    assert np.mean(per_elem <= 4 * se + 1e-12) > 0.99


def test_qsgd_unbiased_and_variance_bound():
    x = _data(2048, 12, spread=False)
    chunk, s = 512, 15.0
    norms = C.chunk_norms(x, chunk, "l2")

    def qsgd(v, key):
        return C.dequantize_i8(C.quantize_i8(v, chunk, norms, s, key), chunk, norms, s)

    draws = _draws(qsgd, x, 400)
    _check_unbiased(draws, x)
    var = draws.astype(np.float64).var(axis=0).reshape(-1, chunk).sum(axis=1)
    bound = min(chunk / s ** 2, np.sqrt(chunk) / s) * norms.astype(np.float64) ** 2
    assert np.all(var <= 1.1 * bound)


def test_int8_stochastic_unbiased():
    x = _data(3000, 13, spread=False)
    sc = C.chunk_norms(x, x.size, "max")

    def int8(v, key):
        return C.dequantize_i8(C.quantize_i8(v, v.size, sc, 127.0, key), v.size, sc, 127.0)

    _check_unbiased(_draws(int8, x, 300), x)


def test_terngrad_unbiased_and_variance():
    x = _data(3000, 14, spread=False)
    s = C.chunk_norms(x, x.size, "max")

    def tern(v, key):
        return C.terngrad_dequantize(C.terngrad_quantize(v, s, 0, key), v.size, s, 0)

    draws = _draws(tern, x, 400)
    _check_unbiased(draws, x)
    # Var of one element = |x| (s - |x|) <= s |x|
    var = draws.astype(np.float64).var(axis=0)
    sc = float(s[0])
    assert var.sum() <= 1.1 * float(np.sum(np.abs(x) * (sc - np.abs(x))))
