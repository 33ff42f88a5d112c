"""PowerSGD's batched passes in use: compiled (``dtnn._kernels._lowrank``) or the numpy
twins (``dtnn.compress.lowrank_twins``; ``DTNN_KERNELS=numpy`` forces them)."""
from __future__ import annotations

from dtnn._kernels import resolve
from dtnn.compress import lowrank_twins

_MODULE = "dtnn._kernels._lowrank"

lr_encode = resolve("lr_encode", _MODULE, lowrank_twins)
lr_orthonormalize = resolve("lr_orthonormalize", _MODULE, lowrank_twins)
lr_round2 = resolve("lr_round2", _MODULE, lowrank_twins)
lr_decode = resolve("lr_decode", _MODULE, lowrank_twins)
