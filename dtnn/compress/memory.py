"""Error feedback (residual memory), usable with any compressor.

For every unit the memory keeps ``e``, what compression dropped so far.  Each step the
compressor sends ``C(x + e)`` and keeps ``e' = (x + e) - D(C(x + e))``, so nothing is
lost, only delayed (Seide et al. 2014; Karimireddy et al. 2019).  The identity
``D(C(x + e)) + e' == x + e`` is what tests/compress/test_compressors.py checks.

On by default for biased compressors (sign, top-k, random-k, PowerSGD); ``ef=false``
in the spec turns it off, ``ef=true`` turns it on for any other compressor.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np


class ErrorFeedback:
    """Error-feedback memory: per tensor, what compression left out so far (added back next
    step)."""
    def __init__(self) -> None:
        self.residuals: Dict[int, np.ndarray] = {}

    def residual(self, index: int, size: int) -> np.ndarray:
        """The residual of tensor ``index`` (zeros of ``size`` the first time or after a
        resize)."""
        e = self.residuals.get(index)
        if e is None or e.size != size:
            e = self.residuals[index] = np.zeros(size, np.float32)
        return e

    def reset(self) -> None:
        """Forget every residual."""
        self.residuals.clear()

    def norm(self) -> float:
        """L2 norm of all residuals together (a diagnostic)."""
        return float(np.sqrt(sum(float(np.dot(e, e)) for e in self.residuals.values())))

    def state_dict(self) -> Dict[str, Any]:
        """The residuals, keyed by tensor index (for checkpoints)."""
        return {f"u{k}": v.copy() for k, v in sorted(self.residuals.items())}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore ``state_dict()``."""
        self.residuals = {int(k[1:]): np.array(v, np.float32).ravel()
                          for k, v in state.items() if k.startswith("u")}
