"""A loaded checkpoint answering classification requests (no web code here).

``Predictor`` is what ``dtnn predict`` and the ``dtnn serve`` page both call, so a file
and the same drawing sent by the browser get identical probabilities.

Concurrency: dtnn layers keep forward-pass caches on the layer objects (for backward),
so two forwards on one model at the same time would overwrite each other's buffers.
``Predictor.forward`` therefore holds one lock around the model call; decoding,
preprocessing, normalisation and softmax run outside it, in parallel.  One small model
answers a single image in about a millisecond, so the lock costs little, and answers
are exactly those of sequential calls.
"""
from __future__ import annotations

import base64
import io
import json
import os
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from dtnn.data.images import InkProfile, ink_map, to_model_input
from dtnn.data.segment import prepare_characters, transcribe
from dtnn.errors import DataError


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits (max-shifted: no overflow)."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def class_names(meta: Dict[str, Any], num_outputs: int) -> List[str]:
    """The class names stored in a checkpoint, or "0".."K-1" when absent or unusable."""
    names = meta.get("classes")
    if isinstance(names, list) and len(names) == num_outputs:
        return [str(n) for n in names]
    return [str(i) for i in range(num_outputs)]


def png_data_url(frame: np.ndarray) -> str:
    """A (C, H, W) array in [0, 1] as a PNG data URL (8 bits per channel)."""
    from PIL import Image

    pixels = np.clip(np.rint(np.asarray(frame, np.float32) * 255.0), 0, 255).astype(np.uint8)
    if pixels.shape[0] == 1:
        img = Image.fromarray(pixels[0], mode="L")
    else:
        img = Image.fromarray(np.ascontiguousarray(pixels[:3].transpose(1, 2, 0)), mode="RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class Predictor:
    """One checkpoint loaded once (HDF5 via h5py, no pickle), shared by all requests."""

    def __init__(self, checkpoint: str, warmup: bool = True):
        from dtnn.io.checkpoint import load_checkpoint

        ckpt = load_checkpoint(checkpoint)
        self.path = os.fspath(checkpoint)
        self.model = ckpt.model
        self.meta = ckpt.meta
        self.epoch, self.step = ckpt.epoch, ckpt.step
        self.history = _history(ckpt.states)
        self.input_shape = tuple(int(s) for s in self.model.input_shape)
        self.classes = class_names(self.meta, int(np.prod(self.model.output_shape)))
        self.normalization = self.meta.get("normalization") or None
        self.profile = InkProfile.from_meta(self.meta)
        self._lock = threading.Lock()
        self.requests = 0
        from dtnn.infer import InferenceModel   # BN folded, activations fused: fast batch 1
        self.fast = InferenceModel(self.model, kernel="heuristic")
        if warmup:  # first-call costs (allocation, BestOf tuning) at start-up, not in a request
            self.forward(np.zeros((1,) + self.input_shape, np.float32))

    @property
    def takes_images(self) -> bool:
        return len(self.input_shape) == 3

    # --- the model call ------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (N, K) for model inputs ``x`` (N, *input_shape) in [0, 1]
        (uint8 is scaled), normalised with the checkpoint's statistics."""
        from dtnn.data import normalize_array

        x = np.asarray(x)
        if tuple(x.shape[1:]) != self.input_shape:
            raise DataError(f"inputs of shape {tuple(x.shape[1:])}, the model expects "
                            f"{self.input_shape}")
        if self.normalization:
            x = normalize_array(x, self.normalization)
        else:
            x = np.array(x, dtype=np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)
        x = np.ascontiguousarray(x, dtype=np.float32)
        with self._lock:  # the plan's buffers are shared: one forward at a time
            logits = self.fast.predict(x)
            self.requests += 1
        return softmax(logits.astype(np.float64)).astype(np.float32)

    def top(self, probs: np.ndarray, k: int) -> List[Dict[str, Any]]:
        order = np.argsort(-probs, kind="stable")[:max(1, min(int(k), len(probs)))]
        return [{"class": self.classes[i], "index": int(i), "probability": float(probs[i])}
                for i in order]

    def _answer(self, probs: np.ndarray, x: np.ndarray, k: int, picture: bool) -> Dict[str, Any]:
        top = self.top(probs, k)
        out = {"prediction": top[0]["class"], "index": top[0]["index"],
               "probability": top[0]["probability"], "top": top,
               "probabilities": [float(p) for p in probs]}
        if picture and len(self.input_shape) == 3:
            out["input"] = png_data_url(x)
        return out

    # --- requests ------------------------------------------------------------------------
    def classify_image(self, image: np.ndarray, top_k: int = 5, segment: bool = False,
                       invert: Optional[bool] = None, pictures: bool = True) -> Dict[str, Any]:
        """A decoded image through the MNIST recipe (and, with ``segment``, also each
        character of it).  Returns the answer dict of the JSON API."""
        if not self.takes_images:
            raise DataError(f"this model takes feature vectors of shape {self.input_shape}, "
                            "not images; send an array")
        t0 = time.perf_counter()
        ink = ink_map(image, invert)
        whole = to_model_input(ink, self.input_shape, self.profile)
        batch = [whole[None]]
        chars = []
        if segment:
            xs, chars = prepare_characters(ink, self.input_shape, self.profile, invert=False)
            batch.append(xs)
        x = np.concatenate(batch)
        t1 = time.perf_counter()
        probs = self.forward(x)
        t2 = time.perf_counter()
        out = self._answer(probs[0], x[0], top_k, pictures)
        if segment:
            found = []
            for c, p, xi in zip(chars, probs[1:], x[1:]):
                item = self._answer(p, xi, top_k, pictures)
                item.pop("probabilities")
                item["box"] = list(c.box)
                found.append(item)
            out["characters"] = found
            out.update(transcribe([c["prediction"] for c in found]))
        out["timings_ms"] = {"preprocess": 1e3 * (t1 - t0), "inference": 1e3 * (t2 - t1)}
        return out

    def classify_array(self, arr: np.ndarray, top_k: int = 5) -> Dict[str, Any]:
        """One sample already in the model's layout ((C, H, W), or (H, W) for grey
        models, or (F,)), values in [0, 1] or uint8 0..255."""
        arr = np.asarray(arr)
        if arr.dtype.kind not in "uif":
            raise DataError(f"array of dtype {arr.dtype}, expected numbers")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise DataError("array holds NaN or infinite values")
        shape = self.input_shape
        if arr.shape == shape[1:] and len(shape) == 3 and shape[0] == 1:
            arr = arr[None]
        if arr.shape != shape:
            raise DataError(f"array of shape {tuple(arr.shape)}, the model expects {shape}"
                            + (f" (or {shape[1:]})" if len(shape) == 3 and shape[0] == 1 else ""))
        if arr.dtype != np.uint8:
            arr = arr.astype(np.float32)
        t0 = time.perf_counter()
        probs = self.forward(arr[None])
        t1 = time.perf_counter()
        x = arr.astype(np.float32) / (255.0 if arr.dtype == np.uint8 else 1.0)
        out = self._answer(probs[0], x, top_k, True)
        out["timings_ms"] = {"preprocess": 0.0, "inference": 1e3 * (t1 - t0)}
        return out

    # --- the model card ------------------------------------------------------------------
    def card(self) -> Dict[str, Any]:
        """Metadata for ``GET /api/model`` and the page (no server paths)."""
        cfg = self.meta.get("config") or {}
        arch = getattr(self.model, "arch", {}) or {}
        name = arch.get("name") or (cfg.get("model") or {}).get("name") or self.model.name
        size = os.path.getsize(self.path) if os.path.exists(self.path) else None
        accuracy = _accuracy(self.path, self.meta, self.history)
        return {
            "name": name,
            "file": os.path.basename(self.path),
            "parameters": self.model.num_params(),
            "file_bytes": size,
            "parameter_bytes": int(self.model.flat_params.nbytes),
            "input_shape": list(self.input_shape),
            "classes": list(self.classes),
            "epoch": self.epoch,
            "step": self.step,
            "accuracy": accuracy,
            "pruned": _pruned(self.meta),
            "dataset": (cfg.get("data") or {}).get("source"),
            "normalized": bool(self.normalization),
            "ink": self.profile.to_dict(),
            "dtnn_version": self.meta.get("dtnn_version"),
        }


def _history(states: Dict[str, Any]) -> List[Dict[str, Any]]:
    raw = (states.get("history") or {}).get("records")
    try:
        records = json.loads(raw) if isinstance(raw, str) else []
    except ValueError:
        return []
    return records if isinstance(records, list) else []


def _accuracy(path: str, meta: Dict[str, Any], history) -> Optional[Dict[str, Any]]:
    """Test accuracy of this checkpoint: stored in its meta, else the run directory's
    report.json when it belongs to this file, else the last evaluation in its history."""
    for key in ("test_accuracy", "accuracy"):
        if isinstance(meta.get(key), (int, float)):
            return {"value": float(meta[key]), "source": "checkpoint"}
    report = os.path.join(os.path.dirname(os.path.abspath(path)), "report.json")
    if os.path.basename(path) == "checkpoint.h5" and os.path.exists(report):
        try:
            with open(report) as fh:
                value = json.load(fh).get("accuracy")
            if isinstance(value, (int, float)):
                return {"value": float(value), "source": "test set (report.json)"}
        except (OSError, ValueError, AttributeError):
            pass
    evals = [r for r in history if isinstance(r, dict) and "eval_accuracy" in r]
    if evals:
        return {"value": float(evals[-1]["eval_accuracy"]),
                "source": f"evaluation after epoch {evals[-1].get('epoch', '?')}"}
    return None


def _pruned(meta: Dict[str, Any]) -> Any:
    """``False``, or what ``dtnn prune`` recorded (criterion, steps, size before), without
    its server-side paths."""
    info = meta.get("prune")
    if not info:
        return bool(meta.get("pruned", False))
    if not isinstance(info, dict):
        return True
    original = info.get("original") if isinstance(info.get("original"), dict) else {}
    out = {"criterion": info.get("criterion"), "steps": info.get("steps"),
           "original_parameters": original.get("params")}
    return {k: v for k, v in out.items() if v is not None} or True


def check_top_k(value: Any, num_classes: int) -> int:
    """``top_k`` option as an int in 1..num_classes (larger asks are capped)."""
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise DataError(f"top_k must be an integer, got {value!r}") from None
    if k < 1:
        raise DataError(f"top_k must be at least 1, got {k}")
    return min(k, num_classes)


def parse_invert(value: Any) -> Optional[bool]:
    """``invert`` option: auto (None, "", "auto") or a boolean spelled any usual way."""
    from dtnn.data._opts import as_bool

    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return None
    return as_bool("invert", value)


def batch_answers(pred: Predictor, x: np.ndarray, top_k: int) -> List[Dict[str, Any]]:
    """Answers for a batch of model inputs (used by ``dtnn predict`` for arrays)."""
    probs = pred.forward(x)
    return [pred._answer(p, xi, top_k, False) for p, xi in zip(probs, x)]


__all__: Sequence[str] = ("Predictor", "class_names", "softmax", "png_data_url",
                          "check_top_k", "parse_invert", "batch_answers")
