"""Images in, model inputs out: decoding, the MNIST-style recipe, and segmentation.

One recipe serves ``dtnn predict`` and the drawing page (``dtnn serve``), so a file on
disk and the same picture drawn in a browser reach the model as the same array:

1. ``decode_image``: PNG/JPEG/... bytes -> grey float32 (H, W) in [0, 1]
   (transparent pixels become white paper);
2. ``ink_map``: how much ink each pixel holds, 1 = full ink.  The paper's colour is the
   median of the image border, so dark-on-light and light-on-dark pictures both work;
3. ``to_model_input``: crop to the ink's bounding box, scale the longer side to the
   *ink extent* the model was trained with (keeping the aspect ratio), centre the
   centre of mass on the model's input frame, and give the ink the training data's
   polarity.  The result is (C, H, W) in [0, 1], the space in which the checkpoint's
   normalisation statistics were measured (``normalize_array`` comes next).

The ink extent and polarity are measured on the training images by ``ink_profile``
and stored in the checkpoint: MNIST digits fill 20 of 28 pixels, Fashion-MNIST items
and scikit-learn's 8x8 digits their whole frame, and a drawing scaled to another
dataset's habits is read worse.  Checkpoints without a profile get MNIST's 20/28.

The profile also holds the training images' ink density (lower quartile of the mean
ink per image).  A drawing whose strokes come out thinner than that (a fine pen on a
big canvas, shrunk to 8x8) is thickened before the final scaling, stroke by stroke, by
the smallest growth that reaches it: scikit-learn's digits have 2-pixel strokes, and a
1-pixel "7" is read as a "3".  Strokes are never thinned.

Drawings of several characters are split and transcribed by ``dtnn.data.segment``.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from dtnn.errors import DataError

#: a pixel holds ink when it has at least this fraction of the darkest stroke's ink
INK_THRESHOLD = 0.2
#: images larger than this many pixels are refused before their pixels are decoded
MAX_PIXELS = 4096 * 4096
#: larger drawings are block-averaged down to this longer side before the recipe
MAX_SIDE = 640
#: MNIST's ink box: digits were scaled into 20x20 and centred in 28x28
MNIST_EXTENT = 20.0 / 28.0


@dataclass(frozen=True)
class InkProfile:
    """How ink looks in a model's training images.

    ``extent``: median longer side of the ink's bounding box as a fraction of the
    frame; ``light_ink``: strokes are brighter than the background (MNIST-style).
    """
    extent: float = MNIST_EXTENT
    light_ink: bool = True
    fill: Optional[float] = None   # ink density below which strokes are thickened

    def to_dict(self) -> Dict[str, Any]:
        out = {"extent": float(self.extent), "light_ink": bool(self.light_ink)}
        if self.fill is not None:
            out["fill"] = float(self.fill)
        return out

    @classmethod
    def from_meta(cls, meta: Optional[Dict[str, Any]]) -> "InkProfile":
        """The profile stored in a checkpoint's ``meta["ink"]`` (MNIST's if absent)."""
        raw = (meta or {}).get("ink")
        if not isinstance(raw, dict):
            return cls()
        try:
            extent = float(raw.get("extent", MNIST_EXTENT))
            light = bool(raw.get("light_ink", True))
            fill = None if raw.get("fill") is None else float(raw["fill"])
        except (TypeError, ValueError):
            return cls()
        if not 0.05 <= extent <= 1.0:
            extent = MNIST_EXTENT
        if fill is not None and not 0.0 < fill < 1.0:
            fill = None
        return cls(extent, light, fill)


def ink_profile(x: np.ndarray, normalization: Optional[Dict[str, Any]] = None,
                limit: int = 2000) -> Dict[str, Any]:
    """Measure the ``InkProfile`` of training images ``x`` (N, C, H, W).

    ``normalization``: the statistics ``x`` was standardised with (undone here, the
    profile is measured in [0, 1] pixel space).  Uses at most ``limit`` samples; the
    result is a JSON-able dict for the checkpoint's ``meta["ink"]``.
    """
    x = np.asarray(x)
    if x.ndim != 4 or len(x) == 0:
        return InkProfile().to_dict()
    pixels = x[:limit].astype(np.float32)
    if normalization and normalization.get("mode", "none") != "none":
        mean = np.asarray(normalization["mean"], np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(normalization["std"], np.float32).reshape(1, -1, 1, 1)
        pixels = pixels * std + mean
    sample = pixels.mean(axis=1)  # (n, H, W) grey
    border = np.concatenate([sample[:, 0, :], sample[:, -1, :], sample[:, :, 0],
                             sample[:, :, -1]], axis=1)
    background = float(np.median(border))
    lo, hi = float(sample.min()), float(sample.max())
    light = background <= (lo + hi) / 2
    ink = sample - background if light else background - sample
    frame = max(sample.shape[1], sample.shape[2])
    sides = []
    for img in ink:
        box = ink_box(img)
        if box is not None:
            r0, r1, c0, c1 = box
            sides.append(max(r1 - r0, c1 - c0) / frame)
    extent = float(np.median(sides)) if sides else MNIST_EXTENT
    density = np.clip(ink, 0.0, 1.0).mean(axis=(1, 2))
    fill = float(np.quantile(density, 0.25))
    return InkProfile(min(1.0, max(0.05, extent)), light,
                      fill if 0.0 < fill < 1.0 else None).to_dict()


# --- decoding --------------------------------------------------------------------------

def decode_image(data: bytes, where: str = "image") -> np.ndarray:
    """Decode image bytes (any format Pillow reads) into grey float32 (H, W) in [0, 1]
    (colour becomes luma: the recipe reads ink, not colour).  Transparent areas become
    white paper; images with a side above ``MAX_SIDE`` are block-averaged down first.
    Anything undecodable or too large raises ``DataError`` naming ``where``."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise DataError(f"{where}: empty, expected an image")
    try:
        img = Image.open(io.BytesIO(data))
        width, height = img.size
        if width * height > MAX_PIXELS:
            raise DataError(f"{where}: {width}x{height} pixels is larger than the "
                            f"{MAX_PIXELS} pixels accepted")
        if width < 1 or height < 1:
            raise DataError(f"{where}: image has no pixels")
        img.load()
    except DataError:
        raise
    except UnidentifiedImageError:
        raise DataError(f"{where}: not an image (no known image format: PNG, JPEG, ...)") \
            from None
    except (OSError, ValueError, SyntaxError,
            Image.DecompressionBombError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{where}: cannot decode image ({text})") from None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        if img.getchannel("A").getextrema()[0] < 255:   # (the page's canvas is opaque)
            paper = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(paper, img)
    k = -(-max(img.size) // MAX_SIDE)
    if k > 1 and img.mode not in ("I", "I;16", "I;16B", "F"):
        img = img.convert("L").reduce(k)   # block means in C: see _reduce
    if img.mode in ("I", "I;16", "I;16B", "F"):   # 16/32-bit grey: keep the precision
        arr = np.asarray(img.convert("F"), dtype=np.float32)
        scale = 65535.0 if img.mode.startswith("I") and arr.max() > 255 else 255.0
        return np.clip(arr / np.float32(scale), 0.0, 1.0)
    grey = np.asarray(img.convert("L"))           # colour -> luma, in Pillow's C code
    return grey.astype(np.float32) * np.float32(1.0 / 255.0)


def read_image(path: str) -> np.ndarray:
    """``decode_image`` of a file, with errors naming the file."""
    from dtnn.data.idx import read_file
    return decode_image(read_file(path), path)


# --- the recipe ------------------------------------------------------------------------

def ink_map(image: np.ndarray, invert: Optional[bool] = None) -> np.ndarray:
    """Ink per pixel (H, W) float32 in [0, 1] from a decoded image.

    ``invert=None`` decides from the paper colour (the border's median): light paper
    means dark strokes.  ``True`` forces dark-on-light, ``False`` light-on-dark.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img.mean(axis=2)
    if img.ndim != 2 or img.size == 0:
        raise DataError(f"image must be (H, W) or (H, W, C), got shape {np.shape(image)}")
    img = _reduce(img, MAX_SIDE)
    if invert is None:
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
        paper = float(np.median(border))
        invert = paper > 0.5
        ink = (paper - img) if invert else (img - paper)
    else:
        ink = (1.0 - img) if invert else img
    return np.clip(ink, 0.0, 1.0).astype(np.float32)


def _reduce(img: np.ndarray, max_side: int) -> np.ndarray:
    """Average k x k blocks so the longer side is at most ``max_side`` (the smallest
    integer k).  A 1320x660 retina canvas costs 4x less to read and loses nothing a
    28x28 (or 64x64) model can see; edges are padded with the border's paper."""
    k = -(-max(img.shape) // max_side)
    if k <= 1:
        return img
    h, w = img.shape
    ph, pw = -h % k, -w % k
    if ph or pw:
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
        img = np.pad(img, ((0, ph), (0, pw)), constant_values=float(np.median(border)))
    return img.reshape(img.shape[0] // k, k, img.shape[1] // k, k).mean(axis=(1, 3))


def ink_box(ink: np.ndarray) -> Optional[Tuple[int, int, int, int]]:
    """Bounding box ``(r0, r1, c0, c1)`` (end-exclusive) of the pixels holding ink."""
    peak = float(ink.max()) if ink.size else 0.0
    if peak <= 0.0:
        return None
    mask = ink >= INK_THRESHOLD * peak
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _resize(patch: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    if patch.shape == (height, width):
        return patch.copy()
    shrink = height <= patch.shape[0] and width <= patch.shape[1]
    # area averaging when shrinking (anti-aliased, like the datasets' own down-sampling)
    method = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
    img = Image.fromarray(np.ascontiguousarray(patch, dtype=np.float32), mode="F")
    return np.asarray(img.resize((width, height), method), dtype=np.float32)


def _fit(ink: np.ndarray, height: int, width: int, extent: float) -> np.ndarray:
    """Crop ``ink`` to its box and scale it (aspect kept) so its longer side is
    ``extent`` of the frame; area-averaged, stretched so the darkest stroke is 1."""
    box = ink_box(ink)
    if box is None:
        raise DataError("the image holds no ink (blank drawing?)")
    r0, r1, c0, c1 = box
    patch = ink[r0:r1, c0:c1]
    h, w = patch.shape
    scale = min(extent * height / h, extent * width / w)
    nh = min(height, max(1, int(round(h * scale))))
    nw = min(width, max(1, int(round(w * scale))))
    small = np.clip(_resize(patch, nh, nw), 0.0, None)
    peak = float(small.max())
    if peak <= 0.0:
        raise DataError("the image holds no ink (blank drawing?)")
    return small / np.float32(peak)


def _thickened(ink: np.ndarray, height: int, width: int, extent: float,
               fill: float) -> np.ndarray:
    """``_fit`` of ``ink`` with its strokes grown by the smallest radius (in steps of a
    quarter of a final pixel, at most a tenth of the frame or one pixel) whose result
    reaches ink density ``fill`` on the frame."""
    from scipy import ndimage

    small = _fit(ink, height, width, extent)
    target = fill * height * width
    if small.sum() >= target:
        return small
    r0, r1, c0, c1 = ink_box(ink)
    patch = ink[r0:r1, c0:c1]
    frame = max(height, width) * extent
    shrink = 4.0 * frame / max(patch.shape)       # work at 4x the final resolution
    if shrink < 1.0:
        patch = _resize(patch, max(1, int(round(patch.shape[0] * shrink))),
                        max(1, int(round(patch.shape[1] * shrink))))
    px = max(patch.shape) / frame                 # work pixels per final pixel
    limit = max(1.0, 0.1 * max(height, width)) * px
    patch = np.pad(patch, int(np.ceil(limit)) + 1)
    distance = ndimage.distance_transform_edt(patch < INK_THRESHOLD * float(patch.max()))
    radius = 0.0
    while radius < limit:
        radius = min(limit, radius + max(0.5, px / 4.0))
        grown = np.maximum(patch, (distance <= radius).astype(np.float32))
        small = _fit(grown, height, width, extent)
        if small.sum() >= target:
            break
    return small


def to_model_input(ink: np.ndarray, input_shape: Sequence[int],
                   profile: Optional[InkProfile] = None) -> np.ndarray:
    """The MNIST recipe on an ink map: (C, H, W) float32 in [0, 1] for ``input_shape``.

    Crop to the ink's box, scale its longer side to ``profile.extent`` of the frame
    (aspect kept; strokes are area-averaged then stretched so the darkest stroke is
    full ink; strokes thinner than ``profile.fill`` are thickened first), place it so
    its centre of mass is at the frame's centre (shifted no further than the frame
    allows), then give it the training data's polarity.
    """
    profile = profile or InkProfile()
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3:
        raise DataError(f"the model takes inputs of shape {shape}, not images (C, H, W)")
    channels, height, width = shape
    if profile.fill is not None:
        small = _thickened(ink, height, width, profile.extent, profile.fill)
    else:
        small = _fit(ink, height, width, profile.extent)
    nh, nw = small.shape
    # centre of mass of the patch, then the integer placement putting it at the centre
    total = float(small.sum())
    cy = float((small.sum(axis=1) * np.arange(nh)).sum()) / total
    cx = float((small.sum(axis=0) * np.arange(nw)).sum()) / total
    top = int(np.clip(round((height - 1) / 2.0 - cy), 0, height - nh))
    left = int(np.clip(round((width - 1) / 2.0 - cx), 0, width - nw))
    frame = np.zeros((height, width), np.float32)
    frame[top:top + nh, left:left + nw] = small
    if not profile.light_ink:
        frame = 1.0 - frame
    return np.ascontiguousarray(np.broadcast_to(frame, (channels, height, width)),
                                dtype=np.float32)


def prepare_image(image: np.ndarray, input_shape: Sequence[int],
                  profile: Optional[InkProfile] = None,
                  invert: Optional[bool] = None) -> np.ndarray:
    """Decoded image -> model input (C, H, W) in [0, 1]: ``ink_map`` then
    ``to_model_input``.  The one preprocessing path of ``dtnn predict`` and the page."""
    return to_model_input(ink_map(image, invert), input_shape, profile)
