"""Numpy twins of the bit-packing kernels (in ``dtnn._kernels._compress``, C in
``csrc/bitpack.c``): the contract and the test oracle.  ``dtnn.compress.bitpack``
picks the compiled kernels or these.

Layout
    ``bits`` = B in 1..8.  Element i is stored as the low B bits of its two's
    complement in bits [i*B, i*B + B) of a little-endian bit stream (stream bit k is
    bit k % 8 of byte k // 8): 8 elements fill exactly B bytes, n elements take
    ``packed_size(n, B) = ceil(n*B / 8)`` bytes, and the unused high bits of the last
    byte are 0.  Unpacking sign-extends, so levels in [-2^(B-1), 2^(B-1) - 1] round-trip
    exactly (QSGD's levels are in [-s, s], s = 2^(B-1) - 1); other values keep only
    their low B bits.

Bit-identical to the compiled kernels: all three functions (bytes, levels, and the
float32 values of ``dequantize_bits``, which rounds exactly like ``unpack_bits``
followed by ``dequantize_i8``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

_F32 = np.float32


def packed_size(n: int, bits: int) -> int:
    """Bytes of the packed stream of ``n`` elements of ``bits`` bits."""
    return (int(n) * int(bits) + 7) // 8


def _bits(bits) -> int:
    b = int(bits)
    if not 1 <= b <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    return b


def _into(out: Optional[np.ndarray], value: np.ndarray, accumulate: bool = False):
    if out is None:
        return value
    if out.shape != value.shape:
        raise ValueError(f"out must have {value.size} elements, got {out.size}")
    if accumulate:
        out += value
    else:
        out[...] = value
    return out


def _codes(packed: np.ndarray, n: int, bits: int) -> np.ndarray:
    """The n unsigned B-bit codes of the stream, as uint8."""
    if packed.dtype != np.uint8 or packed.ndim != 1:
        raise ValueError("packed must be a 1-D uint8 array")
    if packed.size != packed_size(n, bits):
        raise ValueError(f"packed must have {packed_size(n, bits)} bytes, got {packed.size}")
    b = np.unpackbits(packed, count=n * bits, bitorder="little").reshape(n, bits)
    return np.packbits(b, axis=1, bitorder="little").reshape(n)


def pack_bits(q: np.ndarray, bits: int, out=None) -> np.ndarray:
    """The B-bit stream of the int8 levels ``q``."""
    bits = _bits(bits)
    if q.dtype != np.int8 or q.ndim != 1:
        raise ValueError("q must be a 1-D int8 array")
    b = np.unpackbits(q.view(np.uint8).reshape(-1, 1), axis=1, bitorder="little")
    return _into(out, np.packbits(b[:, :bits].reshape(-1), bitorder="little"))


def unpack_bits(packed: np.ndarray, n: int, bits: int, out=None) -> np.ndarray:
    """The ``n`` sign-extended int8 levels of the stream."""
    bits = _bits(bits)
    h = np.int16(1 << (bits - 1))
    c = _codes(packed, int(n), bits).astype(np.int16)
    return _into(out, ((c ^ h) - h).astype(np.int8))


def dequantize_bits(packed: np.ndarray, n: int, bits: int, chunk: int, scales: np.ndarray,
                    levels: float, alpha: float = 1.0, out=None,
                    accumulate: bool = False) -> np.ndarray:
    """``out (+)= q * f[i // chunk]``, q the unpacked levels, ``f = (float32)(scales *
    alpha / levels)`` computed in float64 (as ``dequantize_i8``)."""
    n, chunk = int(n), int(chunk)
    if chunk < 1 or scales.size != (n + chunk - 1) // chunk:
        raise ValueError("scales must hold one value per chunk")
    q = unpack_bits(packed, n, bits)
    f = (scales.astype(np.float64) * alpha / float(levels)).astype(_F32)
    return _into(out, q.astype(_F32) * np.repeat(f, chunk)[:n], accumulate)


KERNELS = ("pack_bits", "unpack_bits", "dequantize_bits")
