"""The compression kernels in use: compiled (``dtnn._kernels._compress``) or the numpy
twins (``dtnn.compress.twins``), picked by ``dtnn._kernels.resolve`` so that
``DTNN_KERNELS=numpy`` forces the twins and ``dtnn info`` lists which one runs."""
from __future__ import annotations

from dtnn._kernels import resolve
from dtnn.compress import twins

_MODULE = "dtnn._kernels._compress"

uniform = resolve("uniform", _MODULE, twins)
f32_to_f16 = resolve("f32_to_f16", _MODULE, twins)
f16_to_f32 = resolve("f16_to_f32", _MODULE, twins)
f32_to_bf16 = resolve("f32_to_bf16", _MODULE, twins)
bf16_to_f32 = resolve("bf16_to_f32", _MODULE, twins)
chunk_norms = resolve("chunk_norms", _MODULE, twins)
quantize_i8 = resolve("quantize_i8", _MODULE, twins)
dequantize_i8 = resolve("dequantize_i8", _MODULE, twins)
terngrad_quantize = resolve("terngrad_quantize", _MODULE, twins)
terngrad_dequantize = resolve("terngrad_dequantize", _MODULE, twins)
add_l1 = resolve("add_l1", _MODULE, twins)
sign_pack = resolve("sign_pack", _MODULE, twins)
sign_encode = resolve("sign_encode", _MODULE, twins)
sign_unpack = resolve("sign_unpack", _MODULE, twins)
decode_window = resolve("decode_window", _MODULE, twins)
qring_hop = resolve("qring_hop", _MODULE, twins)
decode_pieces = resolve("decode_pieces", _MODULE, twins)
topk = resolve("topk", _MODULE, twins)
scatter_add = resolve("scatter_add", _MODULE, twins)
gather = resolve("gather", _MODULE, twins)


def compiled():
    """The compiled module, or None if it is not built."""
    try:
        import importlib
        return importlib.import_module(_MODULE)
    except ImportError:
        return None
