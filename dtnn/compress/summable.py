"""The summable compressors' fused kernels in use: compiled (``dtnn._kernels._summable``:
csrc/lowrank.c for PowerSGD, csrc/randomk.c for random-k) or the numpy twins
(``lowrank_twins``, ``randomk_twins``; ``DTNN_KERNELS=numpy`` forces them)."""
from __future__ import annotations

from dtnn._kernels import resolve
from dtnn.compress import lowrank_twins, randomk_twins

_MODULE = "dtnn._kernels._summable"

lr_encode = resolve("lr_encode", _MODULE, lowrank_twins)
lr_orthonormalize = resolve("lr_orthonormalize", _MODULE, lowrank_twins)
lr_round2 = resolve("lr_round2", _MODULE, lowrank_twins)
lr_decode = resolve("lr_decode", _MODULE, lowrank_twins)
rk_encode = resolve("rk_encode", _MODULE, randomk_twins)
