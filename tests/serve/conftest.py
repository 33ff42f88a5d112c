"""Shared by the serve tests: one small model trained on scikit-learn's real
handwritten digits (8x8), and drawings rendered like the page's canvas."""
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

#: small and quick (about 10 s on 2 busy cores), yet it reads drawn digits reliably
DIGITS_TRAIN = ["--set", "data.source=digits", "--set", "model.name=simplecnn",
                "--set", "model.options.filters=16", "--set", "model.options.hidden=64",
                "--set", "train.epochs=10", "--set", "train.batch_size=32",
                "--set", "optim.lr=0.05", "--set", "data.augment_shift=1",
                "--set", "output.progress=false"]

#: strokes as fractions of a 2:1 canvas, as a person draws them
STROKES = {
    "1": [[(0.50, 0.15), (0.50, 0.85)]],
    "7": [[(0.38, 0.20), (0.62, 0.20), (0.46, 0.85)]],
}


@pytest.fixture(scope="session")
def digits_checkpoint(tmp_path_factory):
    from dtnn.cli.main import main

    run_dir = tmp_path_factory.mktemp("digits-run")
    assert main(["train", *DIGITS_TRAIN, "--run-dir", str(run_dir)]) == 0
    return str(run_dir / "checkpoint.h5")


def render(strokes, width=16, size=(660, 330), offset=0.0):
    """Black strokes on white paper, as the page's canvas exports them (grey PNG)."""
    w, h = size
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    for stroke in strokes:
        pts = [((x + offset) * w, y * h) for x, y in stroke]
        draw.line(pts, fill=0, width=width, joint="curve")
    return img


def png_bytes(img):
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def drawing():
    """``drawing("7")`` -> PNG bytes of that character drawn on a canvas."""
    return lambda name, **kw: png_bytes(render(STROKES[name], **kw))


def side_by_side(*names, width=16):
    strokes = []
    for i, name in enumerate(names):
        shift = (i - (len(names) - 1) / 2) * 0.3
        strokes += [[(x + shift, y) for x, y in s] for s in STROKES[name]]
    return png_bytes(render(strokes, width=width))


def as_array(png):
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), np.float32) / 255.0
