"""``dtnn predict``: classify images (PNG/JPEG) or arrays (.npy/.npz) with a checkpoint.

Images are converted to the model's channel count and size and scaled to [0, 1] like
the training data, then normalised with the statistics saved in the checkpoint.
"""
from __future__ import annotations

import argparse
import json
from typing import List

import numpy as np

from dtnn.errors import DataError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint.h5 written by dtnn train")
    p.add_argument("inputs", nargs="+", help="image files, or .npy/.npz arrays (key 'x')")
    p.add_argument("--top", type=_positive_int, default=3,
                   help="show the K most likely classes (K >= 1)")
    p.add_argument("--invert", action="store_true",
                   help="invert images (dark strokes on white -> light on black, like MNIST)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of text")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def load_inputs(paths: List[str], shape, invert: bool) -> np.ndarray:
    batches = []
    for path in paths:
        if path.endswith((".npy", ".npz")):
            batches.append(_load_array(path, shape))
        else:
            batches.append(_load_image(path, shape, invert)[None])
    return np.ascontiguousarray(np.concatenate(batches), dtype=np.float32)


def _load_array(path: str, shape) -> np.ndarray:
    try:
        arr = np.load(path)
        if isinstance(arr, np.lib.npyio.NpzFile):
            if "x" not in arr:
                raise DataError(f"{path}: no array named 'x' (found: {', '.join(arr.files)})")
            arr = arr["x"]
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read array ({exc})") from None
    shape = tuple(shape)
    grey_images = len(shape) == 3 and shape[0] == 1 and arr.ndim in (2, 3)
    if grey_images and arr.shape[-2:] == shape[1:]:
        arr = arr.reshape((-1,) + shape)  # (H, W) or (N, H, W) grey images
    elif arr.ndim == len(shape):
        arr = arr[None]
    if tuple(arr.shape[1:]) != tuple(shape):
        raise DataError(f"{path}: arrays of shape {arr.shape[1:]}, model expects {tuple(shape)}")
    return arr.astype(np.float32) / (255.0 if arr.dtype == np.uint8 else 1.0)


def _load_image(path: str, shape, invert: bool) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    try:
        img = Image.open(path)
        img.load()
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from None
    channels, height, width = shape
    img = img.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if invert:
        arr = 1.0 - arr
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def run(args) -> int:
    from dtnn.cli._checks import checkpoint_file, existing_file
    checkpoint_file(args.checkpoint)   # before h5py and the model load
    for path in args.inputs:
        existing_file(path, "input")
    from dtnn.data import apply_normalization, Dataset
    from dtnn.engine.session import load_for_inference

    model, meta = load_for_inference(args.checkpoint)
    classes = meta.get("classes") or [str(i) for i in range(model.output_shape[0])]
    x = load_inputs(args.inputs, model.input_shape, args.invert)
    ds = Dataset(x, np.zeros(len(x), np.int64), classes, "predict")
    if meta.get("normalization"):
        apply_normalization(ds, meta["normalization"])
    probs = softmax(model.predict(ds.x))
    names = _row_names(args.inputs, len(x))
    for name, p in zip(names, probs):
        order = np.argsort(-p)[:max(1, args.top)]
        top = [(classes[i], float(p[i])) for i in order]
        if args.json:
            print(json.dumps({"input": name, "prediction": top[0][0],
                              "top": [{"class": c, "probability": q} for c, q in top]}))
        else:
            print(f"{name}: {top[0][0]} ({top[0][1]:.1%})  " +
                  "  ".join(f"{c} {q:.1%}" for c, q in top[1:]))
    return 0


def _row_names(paths: List[str], n: int) -> List[str]:
    if len(paths) == n:
        return list(paths)
    return [f"{paths[0] if len(paths) == 1 else 'input'}[{i}]" for i in range(n)]
