"""Gradient compression for the data-parallel exchange.

``dist.compress = "name:key=value,..."`` (or ``dtnn train --compress SPEC``) picks a
compressor; the ``GradientReducer`` then sends compressed buckets and picks the
collective itself (allreduce for summable payloads, allgather otherwise).

    none      fp32 (the reducer's plain path)
    fp16      half precision, summable; prescale=true, accumulate=fp16|fp32,
              reduce_op=dtnn|mpi (whose float16 sum the allreduce uses)
    bf16      bfloat16 by allgather
    int8      per-bucket max scale, stochastic rounding
    qsgd      bits=8 (2..8), chunk=512: unbiased stochastic levels with per-chunk L2
              norms; bits per element on the wire (bit-packed below 8)
    terngrad  chunk=512: unbiased ternary, max-scale per chunk, 2 bits per element
    sign      chunk=512: 1 bit + mean |x| scale per chunk, error feedback
    topk      ratio=0.01, scope=layer|bucket|global; values + int32 indices, EF
    randomk   ratio=0.01; indices from a shared seed, summable, EF
    powersgd  rank=2, start_step=0; rank-r power iteration with warm start, EF

Any spec takes ``ef=true|false`` to force error feedback on or off.
"""
from dtnn.compress import kernels  # noqa: F401  (resolves the kernels: `dtnn info` lists them)
from dtnn.compress import bitpack  # noqa: F401  (likewise the bit-packing kernels)
from dtnn.compress import summable  # noqa: F401  (likewise random-k's and PowerSGD's fused kernels)
from dtnn.compress.base import (COMPRESSORS, Compressor, Unit, build_compressor, check_spec,
                                parse_spec)
from dtnn.compress.memory import ErrorFeedback

__all__ = ["COMPRESSORS", "Compressor", "Unit", "ErrorFeedback", "build_compressor",
           "check_spec", "parse_spec"]
