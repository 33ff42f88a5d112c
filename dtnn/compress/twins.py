"""Numpy twins of the compression kernels (``csrc/compress.c``): the contract.

Every function here has a compiled counterpart of the same name and signature in
``dtnn._kernels._compress``; ``dtnn.compress.kernels`` picks one.  The twins are the
test oracle and the fallback when the extension is not built.

Exactness (what tests/compress/test_kernels.py checks)
    Bit-identical: ``uniform``, fp16/bf16 conversions, ``quantize_i8`` and
    ``terngrad_quantize`` for given scales, all dequantisers, sign pack/unpack,
    ``topk``, ``scatter_add``, ``gather``, ``chunk_norms(kind="max")``.
    Within 1e-5 relative: the sums (``chunk_norms`` l2/l1, ``add_l1``).  C adds 32
    float partial sums of 16 terms each (error <= ~16 * 2**-24 relative for these
    non-negative terms) and combines them in double in a fixed order; numpy sums in
    float64.

RNG
    Counter-based: a call with 64-bit ``key`` first mixes the key once
    (``(k0, k1)`` = low and high 32 bits of the splitmix64 finaliser of
    ``key + 0x9E3779B97F4A7C15``); element ``i`` then draws
    ``u = (hash(uint32(i)) >> 8) * 2**-24`` in [0, 1), where ``hash`` is one
    xorshift-multiply round (two multiplies) with ``k0`` xored into the counter and
    ``k1`` into the middle (``_hash`` below).  For a fixed ``i`` the hash is a
    bijection of ``i ^ k0``, so over random keys ``u`` is exactly uniform on the
    2**-24 grid (stochastic rounding is unbiased); neighbouring indices and different
    keys give statistically independent draws (tested).  A stream is reproducible,
    independent of the thread count, and a different key (derived from seed, rank,
    step and bucket) gives a different stream.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

_U32 = np.uint32
_F32 = np.float32
BLOCK = 8192


_M64 = 0xFFFFFFFFFFFFFFFF


def stream_halves(key: int) -> Tuple[int, int]:
    """(k0, k1): the 64-bit key mixed once per call, as the C kernels do."""
    z = (int(key) + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    z ^= z >> 31
    return z & 0xFFFFFFFF, z >> 32


def _hash(i: np.ndarray, k0: int, k1: int) -> np.ndarray:
    h = i ^ _U32(k0)
    h ^= h >> _U32(16)
    h *= _U32(0x7FEB352D)
    h ^= _U32(k1)
    h ^= h >> _U32(15)
    h *= _U32(0x846CA68B)
    return h ^ (h >> _U32(16))


def uniform(n: int, key: int) -> np.ndarray:
    k0, k1 = stream_halves(int(key) & _M64)
    i = np.arange(n, dtype=np.uint64).astype(_U32)  # the C counter is uint32: wraps alike
    with np.errstate(over="ignore"):
        h = _hash(i, k0, k1)
    return (h >> _U32(8)).astype(_F32) * _F32(1.0 / 16777216.0)


def _nz(value: np.ndarray, accumulate: bool) -> np.ndarray:
    """Writes (not accumulating) give the bits of 0 + value (no -0), as the C kernels."""
    return value if accumulate else value + _F32(0)


def _into(out: Optional[np.ndarray], value: np.ndarray, accumulate: bool = False) -> np.ndarray:
    if out is None:
        return value
    if accumulate:
        out += value
    else:
        out[...] = value
    return out


# --- fp16 / bf16 -------------------------------------------------------------------------
def f32_to_f16(x: np.ndarray, scale: float = 1.0, out=None) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = (x * _F32(scale)).astype(np.float16).view(np.uint16)
    return _into(out, h)


def f16_to_f32(h: np.ndarray, alpha: float = 1.0, out=None, accumulate: bool = False):
    with np.errstate(invalid="ignore", over="ignore"):
        v = h.view(np.float16).astype(_F32) * _F32(alpha)
    return _into(out, v, accumulate)


def f32_to_bf16(x: np.ndarray, scale: float = 1.0, out=None) -> np.ndarray:
    u = (x * _F32(scale)).view(_U32)
    with np.errstate(over="ignore"):
        rounded = (u + _U32(0x7FFF) + ((u >> _U32(16)) & _U32(1))) >> _U32(16)
    nan = (u >> _U32(16)) | _U32(0x40)
    h = np.where((u & _U32(0x7FFFFFFF)) > _U32(0x7F800000), nan, rounded).astype(np.uint16)
    return _into(out, h)


def bf16_to_f32(h: np.ndarray, alpha: float = 1.0, out=None, accumulate: bool = False):
    with np.errstate(invalid="ignore", over="ignore"):
        v = (h.astype(_U32) << _U32(16)).view(_F32) * _F32(alpha)
    return _into(out, v, accumulate)


# --- norms ---------------------------------------------------------------------------------
def chunk_norms(x: np.ndarray, chunk: int, kind: str = "l2") -> np.ndarray:
    n = x.size
    nc = (n + chunk - 1) // chunk
    if kind not in ("l2", "max", "l1"):
        raise ValueError(f"kind must be one of l2, max, l1, got {kind!r}")
    pad = np.zeros(nc * chunk, np.float64)
    pad[:n] = np.abs(x)
    m = pad.reshape(nc, chunk)
    if kind == "max":
        return m.max(axis=1).astype(_F32)
    if kind == "l1":
        return m.sum(axis=1).astype(_F32)
    return np.sqrt(np.einsum("ij,ij->i", m, m)).astype(_F32)


# --- int8 / QSGD ---------------------------------------------------------------------------
def _per_element(values: np.ndarray, n: int, chunk: int) -> np.ndarray:
    return np.repeat(values, chunk)[:n]


def quantize_i8(x: np.ndarray, chunk: int, scales: np.ndarray, levels: float, key: int,
                stochastic: bool = True, out=None) -> np.ndarray:
    n = x.size
    lv = _F32(levels)
    with np.errstate(divide="ignore"):
        inv = np.where(scales > 0, lv / np.where(scales > 0, scales, _F32(1)), _F32(0))
    inv = _per_element(inv.astype(_F32), n, chunk)
    v = np.abs(x) * inv
    r = uniform(n, key) if stochastic else _F32(0.5)
    lvl = np.minimum(np.floor(v + r), lv)
    q = np.where(x < 0, -lvl, lvl).astype(np.int8)
    return _into(out, q)


def dequantize_i8(q: np.ndarray, chunk: int, scales: np.ndarray, levels: float,
                  alpha: float = 1.0, out=None, accumulate: bool = False) -> np.ndarray:
    f = (scales.astype(np.float64) * alpha / float(levels)).astype(_F32)
    return _into(out, _nz(q.astype(_F32) * _per_element(f, q.size, chunk), accumulate), accumulate)


# --- TernGrad ------------------------------------------------------------------------------
def _packed_chunk(chunk: int, n: int, scales: np.ndarray, per: int) -> int:
    if chunk <= 0 or chunk >= n:
        chunk = max(per, ((n + per - 1) // per) * per)
    if chunk % per:
        raise ValueError(f"chunk must be a multiple of {per}, got {chunk}")
    if scales.size != (n + chunk - 1) // chunk:
        raise ValueError("need one scale per chunk")
    return chunk


def terngrad_quantize(x: np.ndarray, scales: np.ndarray, chunk: int, key: int,
                      out=None) -> np.ndarray:
    """Element i keeps sign(x) with probability |x| / scales[i // chunk] (chunk: a
    multiple of 4; <= 0 or >= n: one scale)."""
    n = x.size
    chunk = _packed_chunk(chunk, n, scales, 4)
    sc = scales.astype(_F32)
    with np.errstate(divide="ignore"):
        inv = np.where(sc > 0, _F32(1) / np.where(sc > 0, sc, _F32(1)), _F32(0)).astype(_F32)
    keep = uniform(n, key) < np.abs(x) * np.repeat(inv, chunk)[:n]
    code = np.where(keep, np.where(x < 0, 2, 1), 0).astype(np.uint8)
    padded = np.zeros(((n + 3) // 4) * 4, np.uint8)
    padded[:n] = code
    p = padded.reshape(-1, 4)
    packed = (p[:, 0] | (p[:, 1] << 2) | (p[:, 2] << 4) | (p[:, 3] << 6)).astype(np.uint8)
    return _into(out, packed)


def terngrad_dequantize(packed: np.ndarray, n: int, scales: np.ndarray, chunk: int,
                        alpha: float = 1.0, out=None, accumulate: bool = False) -> np.ndarray:
    chunk = _packed_chunk(chunk, n, scales, 4)
    shifts = np.array([0, 2, 4, 6], np.uint8)
    codes = ((packed[:, None] >> shifts) & 3).reshape(-1)[:n]
    v = np.repeat((scales * _F32(alpha)).astype(_F32), chunk)[:n]
    vals = np.where(codes == 1, v, np.where(codes == 2, -v, _F32(0))).astype(_F32)
    return _into(out, _nz(vals, accumulate), accumulate)


# --- sign ----------------------------------------------------------------------------------
def add_l1(x: Optional[np.ndarray], e: np.ndarray) -> float:
    if x is not None:
        e += x
    return float(np.sum(np.abs(e), dtype=np.float64))


def _sign_chunk(chunk: int, n: int, values: np.ndarray) -> int:
    if chunk <= 0 or chunk >= n:
        chunk = max(8, ((n + 7) // 8) * 8)
    if chunk % 8:
        raise ValueError(f"chunk must be a multiple of 8, got {chunk}")
    if values.size != (n + chunk - 1) // chunk:
        raise ValueError("values must hold one value per chunk")
    return chunk


def sign_pack(c: np.ndarray, values: np.ndarray, chunk: int = 0, ef: bool = False,
              out=None) -> np.ndarray:
    """Bits of ``c >= 0`` (little bit order); ``values[i // chunk]`` is element i's
    magnitude (chunk <= 0 or >= n: one value); with ``ef``: ``c -= value * sign``."""
    n = c.size
    chunk = _sign_chunk(chunk, n, values)
    pos = c >= 0
    bits = np.packbits(pos, bitorder="little")
    if ef:
        v = np.repeat(values.astype(_F32), chunk)[:n]
        c -= np.where(pos, v, -v)
    return _into(out, bits)


def sign_encode(c: np.ndarray, x: Optional[np.ndarray], chunk: int, ef: bool,
                values: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """``c += x`` (if x), ``values`` = each chunk's mean |c|, ``bits`` = the signs of
    c packed, and with ``ef`` ``c -= sent value``."""
    n = c.size
    chunk = _sign_chunk(chunk, n, values)
    if x is not None:
        c += x
    lens = np.full(values.size, chunk, _F32)
    lens[-1] = n - chunk * (values.size - 1)
    np.divide(chunk_norms(c, chunk, "l1"), lens, out=values)
    return sign_pack(c, values, chunk, ef, out=bits)


def sign_unpack(bits: np.ndarray, n: int, values: np.ndarray, chunk: int = 0,
                alpha: float = 1.0, out=None, accumulate: bool = False) -> np.ndarray:
    chunk = _sign_chunk(chunk, n, values)
    pos = np.unpackbits(bits, count=n, bitorder="little").astype(bool)
    v = np.repeat((values * _F32(alpha)).astype(_F32), chunk)[:n]
    return _into(out, _nz(np.where(pos, v, -v).astype(_F32), accumulate), accumulate)


def decode_window(kind: str, codes: np.ndarray, n: int, scales: np.ndarray, chunk: int,
                  alpha: float, levels: float, s0: int, e0: int, out: np.ndarray,
                  base: Optional[np.ndarray] = None, accumulate: bool = False) -> np.ndarray:
    """Elements [s0, e0) of an n-element int8 / terngrad / sign payload into ``out``:
    ``base + v`` with ``base``, else ``out + v`` (accumulate) or ``v``."""
    if not 0 <= s0 <= e0 <= n:
        raise ValueError(f"window [{s0}, {e0}) must lie in [0, {n}]")
    # the add and base forms add the raw decoded value (a -0 stays -0, as in the whole
    # unit's decompress_add); only the plain write turns -0 into 0, as the kernel does
    raw = base is not None or accumulate
    if kind == "int8":
        v = dequantize_i8(codes, chunk, scales, levels, alpha, accumulate=raw)
    elif kind == "terngrad":
        v = terngrad_dequantize(codes, n, scales, chunk, alpha, accumulate=raw)
    elif kind == "sign":
        v = sign_unpack(codes, n, scales, chunk, alpha, accumulate=raw)
    else:
        raise ValueError(f"kind must be one of int8, terngrad, sign, got {kind!r}")
    v = v[s0:e0]
    if base is not None:
        out[:] = base + v
    elif accumulate:
        out += v
    else:
        out[:] = v
    return out


_HOP_PER = {"int8": 1, "terngrad": 4, "sign": 8}


def _hop_split(kind: str, payload: np.ndarray, n: int, chunk: int):
    nc = (n + chunk - 1) // chunk
    codes = payload[4 * nc:]
    return payload[:4 * nc].view(_F32), codes.view(np.int8) if kind == "int8" else codes


def qring_hop(kind: str, pin: Optional[np.ndarray], n: int, chunk: int, levels: float,
              stochastic: bool, norm: str, key: int, pieces, residual=None,
              out=None) -> np.ndarray:
    """One quantised-ring hop: the payload of decoded(pin) + ours (pin None: ours
    alone), ours the concatenated ``pieces`` ((s, e, view) tiling [0, n)).  The twin
    does what the kernel fuses: gather, decode + add, norms, encode."""
    if kind not in _HOP_PER:
        raise ValueError(f"kind must be one of int8, terngrad, sign, got {kind!r}")
    per = _HOP_PER[kind]
    # the compiled entry point's checks, in its order and with its messages
    if norm not in ("l2", "max", "l1") or (kind == "int8" and norm == "l1"):
        raise ValueError(f"norm must be l2 or max for int8 (sign: l1, terngrad: max), got {norm!r}")
    if chunk <= 0 or chunk % per:
        raise ValueError(f"chunk must be a positive multiple of {per}, got {chunk}")
    if kind == "int8" and not 0 < levels <= 127:
        raise ValueError(f"levels must be in (0, 127], got {levels}")
    if kind == "sign" and chunk > 8192:
        raise ValueError(f"sign: chunk must be <= 8192, got {chunk}")
    if residual is not None and kind != "sign":
        raise ValueError("residual (error feedback) is for sign only")
    size = 4 * ((n + chunk - 1) // chunk) + (n + per - 1) // per
    if pin is not None and pin.size != size:
        raise ValueError(f"pin must have {size} bytes, got {pin.size}")
    if residual is not None and residual.size != n:
        raise ValueError(f"residual must have {n} elements, got {residual.size}")
    acc = np.empty(n, _F32)
    at = 0
    for s, e, v in pieces:
        if s != at:
            raise ValueError(f"pieces must tile [0, {n}) in order, got [{s}, {e}) at {at}")
        acc[s:e] = v
        at = e
    if at != n:
        raise ValueError(f"pieces must tile [0, {n}), they end at {at}")
    if pin is not None:
        sc, codes = _hop_split(kind, pin, n, chunk)
        decode_window(kind, codes, n, sc, chunk, 1.0, levels, 0, n, acc, accumulate=True)
    out = np.empty(size, np.uint8) if out is None else out
    scales, codes = _hop_split(kind, out, n, chunk)
    if kind == "int8":
        scales[:] = chunk_norms(acc, chunk, norm)
        quantize_i8(acc, chunk, scales, levels, key, stochastic, out=codes)
    elif kind == "terngrad":
        scales[:] = chunk_norms(acc, chunk, "max")
        terngrad_quantize(acc, scales, chunk, key, out=codes)
    elif residual is not None:
        sign_encode(residual, acc, chunk, True, scales, codes)
    else:
        sign_encode(acc, None, chunk, False, scales, codes)
    return out


def decode_pieces(kind: str, payload: np.ndarray, n: int, chunk: int, alpha: float,
                  levels: float, pieces) -> None:
    """A whole payload decoded into ``pieces`` ((s, e, view) tiling [0, n)): view =
    alpha * v."""
    scales, codes = _hop_split(kind, payload, n, chunk)
    for s, e, v in pieces:
        decode_window(kind, codes, n, scales, chunk, alpha, levels, s, e, v)


# --- top-k / sparse ------------------------------------------------------------------------
def topk(c: np.ndarray, k: int, x: Optional[np.ndarray] = None, zero: bool = False,
         idx=None, val=None) -> Tuple[np.ndarray, np.ndarray]:
    """k largest |c| (after ``c += x``): indices ascending; among magnitudes equal to
    the k-th largest the lowest indices win; ``zero`` clears the selected entries."""
    if x is not None:
        c += x
    n = c.size
    k = max(0, min(int(k), n))
    if k == 0:
        sel = np.zeros(0, np.int64)
    else:
        mag = np.abs(c).view(_U32)  # bit patterns of |c| order like the magnitudes
        thr = np.partition(mag, n - k)[n - k]
        above = np.flatnonzero(mag > thr)
        ties = np.flatnonzero(mag == thr)[:k - above.size]
        sel = np.sort(np.concatenate([above, ties]))
    i = sel.astype(np.int32)
    v = c[sel].astype(_F32)
    if zero:
        c[sel] = 0
    return _into(idx, i), _into(val, v)


def scatter_add(idx: np.ndarray, val: np.ndarray, alpha: float, out: np.ndarray) -> np.ndarray:
    out[idx] += _F32(alpha) * val
    return out


def gather(c: np.ndarray, idx: np.ndarray, x: Optional[np.ndarray] = None, zero: bool = False,
           val=None) -> np.ndarray:
    if x is not None:
        c += x
    v = c[idx].copy()
    if zero:
        c[idx] = 0
    return _into(val, v)


def openmp_enabled() -> bool:
    return False


def openmp_max_threads() -> int:
    return 1


#: every kernel name, in the order the benchmarks list them
KERNELS = ("uniform", "f32_to_f16", "f16_to_f32", "f32_to_bf16", "bf16_to_f32", "chunk_norms",
           "quantize_i8", "dequantize_i8", "terngrad_quantize", "terngrad_dequantize",
           "add_l1", "sign_pack", "sign_unpack", "topk", "scatter_add", "gather")
