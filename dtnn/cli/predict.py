"""``dtnn predict``: classify images (PNG/JPEG/...) or arrays (.npy/.npz) with a checkpoint.

Images go through the MNIST-style recipe of ``dtnn.data.images`` (the same function
the ``dtnn serve`` page uses): ink found and cropped, scaled to the training data's ink
extent, centred by centre of mass, given the training data's polarity, then normalised
with the checkpoint's statistics.  ``--segment`` reads several characters side by side.
Arrays are samples already in the model's layout (only normalised).
"""
from __future__ import annotations

import argparse
import json
from typing import Any, Dict, List, Optional

from dtnn.errors import ConfigError, DataError

#: .npz arrays tried in this order when --key is not given
NPZ_KEYS = ("x_test", "x")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint.h5 written by dtnn train")
    p.add_argument("inputs", nargs="+",
                   help="image files, or .npy/.npz arrays (npz: 'x_test', else 'x', or --key)")
    p.add_argument("--top", type=_positive_int, default=3,
                   help="show the K most likely classes (K >= 1)")
    polarity = p.add_mutually_exclusive_group()
    polarity.add_argument("--invert", dest="invert", action="store_const", const=True,
                          help="images are dark strokes on light paper (default: decided "
                               "from the image border)")
    polarity.add_argument("--no-invert", dest="invert", action="store_const", const=False,
                          help="images are light strokes on dark paper")
    p.add_argument("--segment", action="store_true",
                   help="read several characters side by side (left to right) in each image")
    p.add_argument("--key", help="array to read from .npz inputs (default: x_test, else x)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of text")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def load_array(path: str, shape, key: Optional[str] = None):
    """Samples (N, *shape) from a .npy or .npz file; (H, W) grey images are accepted for
    single-channel models.  uint8 stays uint8 (scaled by the predictor)."""
    import zipfile

    import numpy as np

    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read array ({' '.join(str(exc).split())})") from None
    if isinstance(arr, np.lib.npyio.NpzFile):
        with arr:
            names = list(arr.files)
            wanted = [key] if key else [k for k in NPZ_KEYS if k in names]
            if not wanted or wanted[0] not in names:
                what = f"no array named '{key}'" if key else "no array 'x_test' or 'x'"
                raise DataError(f"{path}: {what} (found: {', '.join(names) or 'nothing'}); "
                                "choose one with --key")
            arr = arr[wanted[0]]
    elif key:
        raise ConfigError(f"--key {key}: {path} is a single-array .npy file")
    if arr.dtype.kind not in "uif":
        raise DataError(f"{path}: arrays of dtype {arr.dtype}, expected numbers")
    shape = tuple(shape)
    grey_images = len(shape) == 3 and shape[0] == 1 and arr.ndim in (2, 3)
    if grey_images and arr.shape[-2:] == shape[1:]:
        arr = arr.reshape((-1,) + shape)  # (H, W) or (N, H, W) grey images
    elif arr.ndim == len(shape):
        arr = arr[None]
    if tuple(arr.shape[1:]) != shape:
        raise DataError(f"{path}: arrays of shape {arr.shape[1:]}, model expects {shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DataError(f"{path}: holds NaN or infinite values")
    return arr if arr.dtype == np.uint8 else arr.astype(np.float32)


def _is_array(path: str) -> bool:
    return path.lower().endswith((".npy", ".npz"))


def predict_files(pred, paths: List[str], top: int, invert: Optional[bool] = None,
                  segment: bool = False, key: Optional[str] = None) -> List[Dict[str, Any]]:
    """One answer dict (as the JSON API's, plus ``input``: a name) per image or array row."""
    from dtnn.data.images import read_image
    from dtnn.serve.predictor import batch_answers

    # read and check every input before any model work
    loaded = []
    for path in paths:
        if _is_array(path):
            loaded.append((path, load_array(path, pred.input_shape, key)))
        else:
            if not pred.takes_images:
                raise DataError(f"{path}: this model takes feature vectors of shape "
                                f"{pred.input_shape}, not images; pass a .npy/.npz array")
            loaded.append((path, read_image(path)))
    rows = []
    for path, data in loaded:
        if _is_array(path):
            answers = batch_answers(pred, data, top)
            names = [path] if len(answers) == 1 else [f"{path}[{i}]" for i in range(len(answers))]
            for name, ans in zip(names, answers):
                rows.append({"input": name, **ans})
        else:
            try:
                ans = pred.classify_image(data, top_k=top, segment=segment, invert=invert,
                                          pictures=False)
            except DataError as exc:
                raise DataError(f"{path}: {exc}") from None
            rows.append({"input": path, **ans})
    return rows


def _text(row: Dict[str, Any]) -> str:
    top = row["top"]
    line = f"{row['input']}: {top[0]['class']} ({top[0]['probability']:.1%})  " + \
        "  ".join(f"{t['class']} {t['probability']:.1%}" for t in top[1:])
    if "characters" in row:
        line += f"\n  characters: {row['text']}"
        if row.get("latex"):
            line += f"   LaTeX: {row['latex']}"
        line += "\n  " + "  ".join(f"{c['prediction']} ({c['probability']:.0%})"
                                   for c in row["characters"])
    return line


def run(args) -> int:
    from dtnn.cli._checks import checkpoint_file, existing_file
    checkpoint_file(args.checkpoint)   # before h5py and the model load
    for path in args.inputs:
        existing_file(path, "input")
    if args.segment and all(_is_array(p) for p in args.inputs):
        raise ConfigError("--segment reads images; the inputs are all arrays")
    from dtnn.serve.predictor import Predictor
    pred = Predictor(args.checkpoint, warmup=False)
    rows = predict_files(pred, args.inputs, min(args.top, len(pred.classes)), args.invert,
                         args.segment, args.key)
    for row in rows:
        if args.json:
            keep = {k: v for k, v in row.items()
                    if k not in ("probabilities", "timings_ms")}
            keep["top"] = [{"class": t["class"], "probability": t["probability"]}
                           for t in row["top"]]
            if "characters" in keep:
                keep["characters"] = [{k: v for k, v in c.items() if k != "input"}
                                      for c in keep["characters"]]
            print(json.dumps(keep))
        else:
            print(_text(row))
    return 0
