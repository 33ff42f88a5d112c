"""Kept for the benchmark scripts that import ``torch_twin`` from next to them: the
twin itself lives in ``dtnn.export.torch_twin``."""
from dtnn.export.torch_twin import torch_twin  # noqa: F401
