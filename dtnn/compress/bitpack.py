"""Bit-packing kernels in use: compiled (``dtnn._kernels._compress``, C in
``csrc/bitpack.c``) or the numpy twins (``dtnn.compress.bitpack_twins``, which
document the layout), picked by ``dtnn._kernels.resolve`` so that
``DTNN_KERNELS=numpy`` forces the twins and ``dtnn info`` lists which one runs.

    pack_bits(q, bits, out=None)                      int8 levels -> B-bit stream
    unpack_bits(packed, n, bits, out=None)            stream -> int8 levels
    dequantize_bits(packed, n, bits, chunk, scales, levels, alpha=1.0, out=None,
                    accumulate=False)                 unpack + dequantise, fused
"""
from __future__ import annotations

from dtnn._kernels import resolve
from dtnn.compress import bitpack_twins as twins
from dtnn.compress.bitpack_twins import packed_size  # noqa: F401  (pure arithmetic)
from dtnn.compress.kernels import _MODULE, compiled  # noqa: F401  (one extension for both)

pack_bits = resolve("pack_bits", _MODULE, twins)
unpack_bits = resolve("unpack_bits", _MODULE, twins)
dequantize_bits = resolve("dequantize_bits", _MODULE, twins)
