"""Pure-numpy twins of the counter-based random kernels (``dtnn._kernels._rng``, C in
csrc/rng.c): the fallback and the tests' second implementation, with the same bits.

Contract (shared with the compiled versions):

philox4x64_10(ctr, key) -> uint64 (4,)
    One Philox4x64-10 block (Salmon et al., SC 2011) of the 4-word counter under the
    2-word key.

random_u64(key0, key1, c1, c2, c3, start, n, out=None) -> uint64 (n,)
    Words start .. start+n-1 of the stream (key0, key1; c1, c2, c3), whose word j is
    word j % 4 of philox4x64_10((j // 4, c1, c2, c3), (key0, key1)).

uniform_f32(key0, key1, c1, c2, c3, start, n, out=None) -> float32 (n,)
    (w >> 8) * 2**-24 for the 32-bit words w = start .. start+n-1 of the stream, 64-bit
    word j giving its low half as 32-bit word 2j and its high half as 2j + 1.

sample_sorted(key0, key1, c1, c2, c3, n, k, out=None) -> int32 (k,)
    A uniformly random k-subset of range(n), increasing.  m = k if 2k <= n else n - k
    values are drawn from the stream's words in order, word w giving w * n >> 64
    unless (w * n) mod 2**64 < 2**64 mod n (Lemire's unbiased multiply-shift; rejected
    words are skipped); the first m distinct values are kept, and the subset is them
    (2k <= n) or the values they leave out.
"""
from __future__ import annotations

import numpy as np

_M0 = 0xD2E7470EE14C6C93
_M1 = 0xCA5A826395121157
_W0 = 0x9E3779B97F4A7C15
_W1 = 0xBB67AE8584CAA73B
_MASK32 = 0xFFFFFFFF
_MASK64 = (1 << 64) - 1


def _mul_hilo(a: np.ndarray, b: int):
    """(hi, lo) 64-bit halves of the 128-bit products a * b (a uint64 array, b < 2**64),
    from four 32 x 32 -> 64-bit products."""
    a0, a1 = a & _MASK32, a >> np.uint64(32)
    b0, b1 = np.uint64(b & _MASK32), np.uint64(b >> 32)
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> np.uint64(32)) + (p01 & _MASK32) + (p10 & _MASK32)
    hi = p11 + (p01 >> np.uint64(32)) + (p10 >> np.uint64(32)) + (mid >> np.uint64(32))
    lo = (mid << np.uint64(32)) | (p00 & _MASK32)
    return hi, lo


def _blocks(c0: np.ndarray, c1: int, c2: int, c3: int, key0: int, key1: int) -> np.ndarray:
    """Philox4x64-10 of the counters (c0[i], c1, c2, c3): shape (len(c0), 4)."""
    c0 = np.asarray(c0, np.uint64)
    c1 = np.full_like(c0, c1)
    c2 = np.full_like(c0, c2)
    c3 = np.full_like(c0, c3)
    k0, k1 = int(key0) & _MASK64, int(key1) & _MASK64
    for rnd in range(10):
        if rnd:
            k0, k1 = (k0 + _W0) & _MASK64, (k1 + _W1) & _MASK64
        hi0, lo0 = _mul_hilo(c0, _M0)
        hi1, lo1 = _mul_hilo(c2, _M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
    return np.stack([c0, c1, c2, c3], axis=1)


def philox4x64_10(ctr, key) -> np.ndarray:
    if len(ctr) != 4 or len(key) != 2:
        raise ValueError("philox4x64_10 needs a counter of 4 words and a key of 2")
    return _blocks(np.array([int(ctr[0])], np.uint64), int(ctr[1]), int(ctr[2]),
                   int(ctr[3]), int(key[0]), int(key[1]))[0]


def _out(out, n: int, dtype):
    if out is None:
        return np.empty(n, dtype)
    if not isinstance(out, np.ndarray) or out.dtype != dtype or out.shape != (n,):
        raise ValueError(f"out must be a 1-D {np.dtype(dtype)} array of {n} elements")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writeable")
    return out


def _counts(start: int, n: int) -> None:
    if start < 0 or n < 0:
        raise ValueError(f"start and n must be >= 0, got {start} and {n}")


def random_u64(key0, key1, c1, c2, c3, start, n, out=None) -> np.ndarray:
    _counts(start, n)
    res = _out(out, n, np.uint64)
    if n:
        first, last = start // 4, (start + n - 1) // 4
        words = _blocks(np.arange(first, last + 1, dtype=np.uint64), c1, c2, c3,
                        key0, key1).reshape(-1)
        res[:] = words[start - 4 * first:start - 4 * first + n]
    return res


def uniform_f32(key0, key1, c1, c2, c3, start, n, out=None) -> np.ndarray:
    _counts(start, n)
    res = _out(out, n, np.float32)
    if n:
        first = start // 2
        words = random_u64(key0, key1, c1, c2, c3, first, (start + n - 1) // 2 - first + 1)
        halves = np.stack([words & _MASK32, words >> np.uint64(32)], axis=1).reshape(-1)
        picked = halves[start - 2 * first:start - 2 * first + n] >> np.uint64(8)
        res[:] = picked.astype(np.float32) * np.float32(2.0 ** -24)
    return res


def sample_sorted(key0, key1, c1, c2, c3, n, k, out=None) -> np.ndarray:
    n, k = int(n), int(k)
    if not 0 <= k <= n <= 2 ** 31:
        raise ValueError(f"sample_sorted needs 0 <= k <= n <= 2**31, got k={k}, n={n}")
    res = _out(out, k, np.int32)
    if k == 0:
        return res
    if k == n:
        res[:] = np.arange(n, dtype=np.int32)
        return res
    complement = 2 * k > n
    m = n - k if complement else k
    reject_below = (1 << 64) % n
    accepted = np.empty(0, np.uint64)
    pos = 0
    while True:
        chunk = m + m // 8 + 64
        hi, lo = _mul_hilo(random_u64(key0, key1, c1, c2, c3, pos, chunk), n)
        pos += chunk
        accepted = np.concatenate([accepted, hi[lo >= np.uint64(reject_below)]])
        values, first_seen = np.unique(accepted, return_index=True)
        if len(values) >= m:
            break
    drawn = accepted[np.sort(first_seen)[:m]].astype(np.int64)   # the first m distinct
    if complement:
        keep = np.ones(n, bool)
        keep[drawn] = False
        res[:] = np.flatnonzero(keep)
    else:
        res[:] = np.sort(drawn)
    return res
