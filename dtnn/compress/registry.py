"""Imports every built-in compressor so that it registers itself by name."""
from dtnn.compress import base, fp16, powersgd, quantize, sign, topk  # noqa: F401


@base.register("none")
class NoCompression(base.Compressor):
    """Placeholder so that "none" is a known name; the reducer never calls it."""
    summable = True
