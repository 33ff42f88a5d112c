"""Several characters in one drawing: segmentation and transcription.

``segment`` splits an ink map (``dtnn.data.images.ink_map``) into one ink map per
character: 8-connected components, merged where they overlap horizontally (the two
bars of ``=``, the dot of ``i``), left to right.  ``prepare_characters`` sends each
through the same recipe as a single drawing; ``transcribe`` joins the predicted class
names into text and, when every name is a LaTeX token, a ``.tex`` string.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from dtnn.errors import DataError
from dtnn.data.images import INK_THRESHOLD, InkProfile, ink_box, ink_map, to_model_input


# --- segmentation ----------------------------------------------------------------------

@dataclass
class Character:
    """One character found by ``segment``: its box in the drawing and its ink alone."""
    box: Tuple[int, int, int, int]   # r0, r1, c0, c1 (end-exclusive)
    ink: np.ndarray                  # the box's ink, other characters' strokes removed


def segment(ink: np.ndarray, min_area: float = 0.002) -> List[Character]:
    """Split an ink map into characters, left to right.

    Pixels holding ink are grouped into 8-connected components; components smaller
    than ``min_area`` of all ink pixels (specks) are dropped, and components whose
    column ranges overlap are merged (the two bars of '=', the dot of 'i', a '4'
    written in two strokes).
    """
    from scipy import ndimage

    box = ink_box(ink)
    if box is None:
        return []
    mask = ink >= INK_THRESHOLD * float(ink.max())
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count == 0:
        return []
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    slices = ndimage.find_objects(labels)
    keep = [i for i in range(count) if areas[i] >= max(1.0, min_area * areas.sum())]
    if not keep:
        keep = [int(np.argmax(areas))]
    parts = sorted(((slices[i][1].start, slices[i][1].stop, i) for i in keep))
    groups: List[List[int]] = []
    right = -1
    for c0, c1, i in parts:
        if groups and c0 < right:
            groups[-1].append(i)
            right = max(right, c1)
        else:
            groups.append([i])
            right = c1
    chars = []
    for members in groups:
        r0 = min(slices[i][0].start for i in members)
        r1 = max(slices[i][0].stop for i in members)
        c0 = min(slices[i][1].start for i in members)
        c1 = max(slices[i][1].stop for i in members)
        region = labels[r0:r1, c0:c1]
        own = np.isin(region, [i + 1 for i in members])
        # keep the faint anti-aliased edge of the strokes too: grow the mask by a pixel
        own = ndimage.binary_dilation(own, structure=np.ones((3, 3), bool)) & (region == 0) | own
        chars.append(Character((r0, r1, c0, c1), np.where(own, ink[r0:r1, c0:c1], 0.0)
                               .astype(np.float32)))
    return chars


def prepare_characters(image: np.ndarray, input_shape: Sequence[int],
                       profile: Optional[InkProfile] = None,
                       invert: Optional[bool] = None) -> Tuple[np.ndarray, List[Character]]:
    """Segment a decoded image and prepare each character: ``(x (K, C, H, W), chars)``."""
    ink = ink_map(image, invert)
    chars = segment(ink)
    if not chars:
        raise DataError("the image holds no ink (blank drawing?)")
    x = np.stack([to_model_input(c.ink, input_shape, profile) for c in chars])
    return x, chars


# --- transcription ---------------------------------------------------------------------

_TEX_SINGLE = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "+-=()[]<>/*!.,;:|'")


def is_tex_token(name: str) -> bool:
    """A class name usable as is in LaTeX maths: one letter/digit/operator, or a
    control sequence such as ``\\alpha`` or ``\\{``."""
    if len(name) == 1:
        return name in _TEX_SINGLE
    if name.startswith("\\") and len(name) >= 2:
        rest = name[1:]
        return rest.isalpha() and rest.isascii() or (len(rest) == 1 and rest in "{}_%&#$,;! ")
    return False


def transcribe(names: Sequence[str]) -> Dict[str, Optional[str]]:
    """Left-to-right class names -> ``{"text", "latex"}``.  ``latex`` is an inline
    maths string when every name is a LaTeX token, else None."""
    names = [str(n) for n in names]
    sep = "" if all(len(n) == 1 for n in names) else " "
    text = sep.join(names)
    if not names or not all(is_tex_token(n) for n in names):
        return {"text": text, "latex": None}
    out = ""
    for name in names:
        # a control word swallows a following letter: "\alpha x", not "\alphax"
        if out and out[-1].isalpha() and name[0].isalpha() and _ends_in_control_word(out):
            out += " "
        out += name
    return {"text": text, "latex": f"${out}$"}


def _ends_in_control_word(tex: str) -> bool:
    i = len(tex)
    while i > 0 and tex[i - 1].isalpha():
        i -= 1
    return i > 0 and tex[i - 1] == "\\"
