"""Softmax + cross-entropy loss on logits (not a Layer of the sequence)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from dtnn.errors import ConfigError, DataError


class SoftmaxCrossEntropy:
    """Mean cross-entropy of softmax(logits) against integer labels.

    With ``label_smoothing`` = e the target is (1 - e) * one_hot + e / K (as in torch).
    ``forward`` returns the mean loss as a Python float; ``backward`` the float32
    gradient of that mean w.r.t. the logits, (softmax - target) / N.
    """

    def __init__(self, label_smoothing: float = 0.0):
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        self._logp: Optional[np.ndarray] = None
        self._labels: Optional[np.ndarray] = None

    def get_config(self):
        """The constructor arguments (JSON-able)."""
        return {"label_smoothing": self.label_smoothing}

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """Mean cross-entropy of ``logits`` against integer labels ``y`` (keeps the softmax for
        ``backward``)."""
        logits = np.asarray(logits)
        labels = np.asarray(labels)
        if logits.ndim != 2:
            raise ValueError(f"logits must be (N, K), got shape {logits.shape}")
        N, K = logits.shape
        if labels.shape != (N,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be an integer array of shape ({N},), got "
                             f"{labels.dtype} {labels.shape}")
        if N and (labels.min() < 0 or labels.max() >= K):
            raise DataError(f"labels must be in [0, {K}), got range "
                            f"[{labels.min()}, {labels.max()}]")
        # log-softmax with the max subtracted: exp never overflows, log never sees 0
        z = logits.astype(np.float32)  # a copy we own
        z -= z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
        z -= lse
        self._logp, self._labels = z, labels
        if N == 0:
            return 0.0
        picked = z[np.arange(N), labels].astype(np.float64)
        e = self.label_smoothing
        per_sample = -(1.0 - e) * picked
        if e:
            per_sample -= (e / K) * z.sum(axis=1, dtype=np.float64)
        return float(per_sample.mean())

    def probabilities(self) -> np.ndarray:
        """softmax(logits) of the last forward, float32 (N, K)."""
        if self._logp is None:
            raise RuntimeError("probabilities() needs a forward first")
        return np.exp(self._logp)

    def backward(self) -> np.ndarray:
        """d(mean loss)/d(logits), float32 (N, K)."""
        if self._logp is None:
            raise RuntimeError("backward() needs a forward first")
        N, K = self._logp.shape
        grad = np.exp(self._logp)
        e = self.label_smoothing
        if e:
            grad -= np.float32(e / K)
        grad[np.arange(N), self._labels] -= np.float32(1.0 - e)
        grad *= np.float32(1.0 / max(N, 1))
        return grad

    __call__ = forward
