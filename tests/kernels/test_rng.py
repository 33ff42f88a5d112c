"""Counter-based random numbers (dtnn.rng, C in csrc/rng.c): the compiled kernels and
the numpy twins give the same bits, both equal numpy's own Philox4x64-10 (an independent
implementation: the oracle), the k-subsets follow their documented rule (checked by a
plain-Python re-implementation over numpy's Philox words) and are uniform (chi-square
over every subset of a small set), and the bits do not depend on the thread count."""
import itertools
import math

import numpy as np
import pytest

from dtnn import rng
from dtnn.rng import twins

ext = pytest.importorskip("dtnn._kernels._rng", reason="compiled kernels not built")

M64 = (1 << 64) - 1
IMPLS = [pytest.param(ext, id="compiled"), pytest.param(twins, id="twin")]


def numpy_words(key, c1, c2, c3, first_block, blocks):
    """Stream words from numpy's Philox: its 256-bit counter is incremented before each
    block, so starting it one below (first_block, c1, c2, c3) yields blocks first_block,
    first_block + 1, ... (first_block + blocks < 2**64: no carry into c1)."""
    below = (first_block + (c1 << 64) + (c2 << 128) + (c3 << 192) - 1) % (1 << 256)
    bg = np.random.Philox(key=np.array(key, np.uint64),
                          counter=np.array([(below >> (64 * i)) & M64 for i in range(4)], np.uint64))
    return bg.random_raw(4 * blocks)


@pytest.mark.parametrize("impl", IMPLS)
def test_philox_block_equals_numpy_philox(impl):
    r = np.random.default_rng(11)
    cases = [([0, 0, 0, 0], [0, 0]), ([M64, M64, M64, M64], [M64, M64])]
    for _ in range(30):
        ctr = [int(v) for v in r.integers(0, 2 ** 64, 4, dtype=np.uint64)]
        cases.append((ctr, [int(v) for v in r.integers(0, 2 ** 64, 2, dtype=np.uint64)]))
    for ctr, key in cases:
        ref = numpy_words(key, ctr[1], ctr[2], ctr[3], ctr[0], 1)
        np.testing.assert_array_equal(impl.philox4x64_10(ctr, key), ref)


@pytest.mark.parametrize("impl", IMPLS)
def test_stream_words_equal_numpy_philox(impl):
    key, c = (2 ** 63 + 5, 77), (3, 2 ** 64 - 2, 9)
    ref = numpy_words(key, *c, 1, 40)          # words 4 .. 163
    for start, n in [(4, 1), (4, 160), (5, 3), (6, 2), (7, 150), (4 + 17, 101), (10, 0)]:
        got = impl.random_u64(*key, *c, start, n)
        np.testing.assert_array_equal(got, ref[start - 4:start - 4 + n])


@pytest.mark.parametrize("impl", IMPLS)
def test_uniform_f32_from_the_stream_halves(impl):
    key, c = (123, 456), (7, 8, 9)
    words = numpy_words(key, *c, 1, 64)        # 64-bit words 4.. = 32-bit words 8..
    halves = np.stack([words & np.uint64(0xFFFFFFFF), words >> np.uint64(32)], 1).reshape(-1)
    ref = ((halves >> np.uint64(8)).astype(np.float64) * 2.0 ** -24).astype(np.float32)
    for start, n in [(8, 1), (9, 7), (8, 500), (13, 300)]:
        got = impl.uniform_f32(*key, *c, start, n)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, ref[start - 8:start - 8 + n])


def test_uniform_f32_is_uniform():
    u = rng.uniform_f32(rng.stream(3, "test-uniform"), 200_000)
    assert u.min() >= 0.0 and u.max() < 1.0
    counts = np.bincount((u * 20).astype(np.int64), minlength=20)
    chi2 = float(((counts - 10_000.0) ** 2 / 10_000.0).sum())
    assert chi2 < 60.0     # 19 degrees of freedom: P(chi2 > 60) ~ 4e-6


def oracle_sample(key, c, n, k):
    """The documented rule, in plain Python over numpy's Philox words."""
    if k == n:
        return list(range(n))
    m = n - k if 2 * k > n else k
    reject_below = (1 << 64) % n
    seen, order, block = set(), [], 0
    while len(order) < m:
        words = [int(w) for w in numpy_words(key, *c, block, 8)]
        block += 8
        for w in words:
            if len(order) == m:
                break
            prod = w * n
            if prod & M64 < reject_below:
                continue
            v = prod >> 64
            if v not in seen:
                seen.add(v)
                order.append(v)
    return sorted(set(range(n)) - seen) if 2 * k > n else sorted(order)


SHAPES = [(1, 1), (5, 0), (5, 5), (7, 3), (7, 4), (1000, 10), (1000, 500), (1000, 501),
          (1000, 999), (100_003, 1001), (402_442, 4025)]


@pytest.mark.parametrize("impl", IMPLS)
def test_sample_sorted_follows_its_rule(impl):
    key, c = (2 ** 64 - 9, 31), (5, 2, 0)
    for n, k in SHAPES:
        got = impl.sample_sorted(*key, *c, n, k)
        assert got.dtype == np.int32 and got.shape == (k,)
        assert np.all(np.diff(got) > 0) and (k == 0 or (got[0] >= 0 and got[-1] < n))
        if n <= 1000 or k <= 1001:
            assert got.tolist() == oracle_sample(key, c, n, k), (n, k)


def test_compiled_equals_twin_on_many_streams():
    for step in range(40):
        for n, k in [(97, 5), (300, 290), (5000, 50), (6400, 64)]:
            a = ext.sample_sorted(9, 10, step, 3, 0, n, k)
            b = twins.sample_sorted(9, 10, step, 3, 0, n, k)
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n,k", [(8, 3), (8, 6)])
def test_every_subset_equally_likely(n, k):
    """Chi-square over all C(n, k) subsets (the drawing side and the complement side)."""
    subsets = {s: i for i, s in enumerate(itertools.combinations(range(n), k))}
    draws = 200 * len(subsets)
    counts = np.zeros(len(subsets))
    for t in range(draws):
        counts[subsets[tuple(rng.sample_sorted(rng.stream(1, "chi2", t), n, k).tolist())]] += 1
    expected = draws / len(subsets)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    dof = len(subsets) - 1
    assert chi2 < dof + 6 * math.sqrt(2 * dof), (chi2, dof)   # ~ 6 sigma


def test_inclusion_frequency_is_k_over_n():
    n, k, draws = 1000, 10, 3000
    hits = np.zeros(n)
    for t in range(draws):
        hits[rng.sample_sorted(rng.stream(2, "marginal", t), n, k)] += 1
    expected = draws * k / n
    chi2 = float(((hits - expected) ** 2 / expected).sum())
    assert chi2 < (n - 1) + 6 * math.sqrt(2 * (n - 1))


def test_streams_differ_by_every_part():
    base = rng.sample_sorted(rng.stream(1, "p", 2, 3, 4), 10_000, 100)
    for s in [rng.stream(9, "p", 2, 3, 4), rng.stream(1, "q", 2, 3, 4), rng.stream(1, "p", 0, 3, 4),
              rng.stream(1, "p", 2, 0, 4), rng.stream(1, "p", 2, 3, 0)]:
        assert not np.array_equal(rng.sample_sorted(s, 10_000, 100), base)
    assert rng.stream(-1, "p") == rng.stream(M64, "p")
    assert rng.purpose_key("p") == rng.purpose_key("p") != rng.purpose_key("q")


def test_same_bits_at_one_and_two_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl not installed")
    outs = []
    for threads in (1, 2):
        with threadpoolctl.threadpool_limits(threads, user_api="openmp"):
            outs.append((ext.random_u64(1, 2, 3, 4, 5, 3, 300_001),
                         ext.uniform_f32(1, 2, 3, 4, 5, 5, 300_001),
                         ext.sample_sorted(1, 2, 3, 4, 5, 3_000_000, 200_000)))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(outs[0][2], twins.sample_sorted(1, 2, 3, 4, 5, 3_000_000, 200_000))


@pytest.mark.parametrize("impl", IMPLS)
def test_bad_arguments_are_value_errors(impl):
    with pytest.raises(ValueError):
        impl.sample_sorted(0, 0, 0, 0, 0, 5, 6)
    with pytest.raises(ValueError):
        impl.sample_sorted(0, 0, 0, 0, 0, 5, 2, out=np.empty(3, np.int32))
    with pytest.raises(ValueError):
        impl.random_u64(0, 0, 0, 0, 0, 0, 4, out=np.empty(4, np.int64))
    with pytest.raises(ValueError):
        impl.uniform_f32(0, 0, 0, 0, 0, -1, 4)
    with pytest.raises(ValueError):
        rng.stream(0, "p", 1, 2, 3, 4)
