"""The MNIST-style recipe, decoding and segmentation against hand-computed cases."""
import io

import numpy as np
import pytest
from PIL import Image

from dtnn.data.images import (InkProfile, decode_image, ink_map, ink_profile, prepare_image,
                              to_model_input)
from dtnn.data.segment import segment, transcribe
from dtnn.errors import DataError

MNIST = InkProfile(20 / 28, True)


def paper(h, w, value=1.0):
    return np.full((h, w), value, np.float32)


def test_off_centre_small_dark_drawing_ends_centred_scaled_and_inverted():
    img = paper(100, 60)
    img[10:15, 5:15] = 0.0          # 5x10 black box near the top-left corner, white paper
    x = prepare_image(img, (1, 28, 28), MNIST)
    # longer side 10 -> 20 pixels (x2, constant patch stays 1), 10x20 box; its centre of
    # mass (4.5, 9.5) goes to the frame centre 13.5 -> rows 9..18, columns 4..23
    want = np.zeros((28, 28), np.float32)
    want[9:19, 4:24] = 1.0
    np.testing.assert_allclose(x[0], want, atol=1e-6)
    assert x.shape == (1, 28, 28) and x.dtype == np.float32


def test_light_on_dark_gives_the_same_input_as_dark_on_light():
    dark = paper(100, 60)
    dark[30:70, 20:30] = 0.0
    light = 1.0 - dark
    np.testing.assert_allclose(prepare_image(dark, (1, 28, 28), MNIST),
                               prepare_image(light, (1, 28, 28), MNIST), atol=1e-6)
    # forcing the polarity the wrong way finds the paper as ink: a full frame box
    forced = prepare_image(light, (1, 28, 28), MNIST, invert=True)
    assert forced[0].sum() > prepare_image(light, (1, 28, 28), MNIST)[0].sum()


def test_centre_of_mass_not_box_centre():
    ink = np.zeros((40, 40), np.float32)
    ink[5:25, 5:9] = 1.0       # vertical bar, 20 x 4   (mass 80, centre (9.5, 1.5) in box)
    ink[21:25, 9:25] = 1.0     # foot, 4 x 16           (mass 64, centre (17.5, 11.5) in box)
    x = to_model_input(ink, (1, 28, 28), MNIST)[0]
    # box 20x20: no scaling.  CoM = (13.06, 5.94): top = round(13.5-13.06) = 0,
    # left = round(13.5-5.94) = 8 (the box's own centre would give left = 4)
    want = np.zeros((28, 28), np.float32)
    want[0:20, 8:12] = 1.0
    want[16:20, 12:28] = 1.0
    np.testing.assert_allclose(x, want, atol=1e-6)
    rows, cols = np.indices(x.shape)
    assert abs((x * cols).sum() / x.sum() - 13.5) <= 0.5


def test_full_frame_extent_dark_ink_and_channels():
    ink = np.zeros((60, 60), np.float32)
    ink[10:50, 20:40] = 1.0                               # 40 x 20
    x = to_model_input(ink, (3, 8, 8), InkProfile(1.0, False))
    assert x.shape == (3, 8, 8)
    want = np.ones((8, 8), np.float32)
    want[0:8, 2:6] = 0.0                                   # 8 x 4, dark ink on light
    for c in range(3):
        np.testing.assert_allclose(x[c], want, atol=1e-6)


def test_downscaling_area_averages_and_keeps_the_peak_at_one():
    ink = np.zeros((300, 300), np.float32)
    ink[20:280, 140:152] = 1.0                             # thin tall stroke
    x = to_model_input(ink, (1, 28, 28), MNIST)[0]
    assert x.max() == pytest.approx(1.0)
    assert (x > 0).any(axis=1).sum() == 20                # 260 px tall -> 20 rows


def test_blank_and_bad_shapes_are_data_errors():
    with pytest.raises(DataError, match="no ink"):
        prepare_image(paper(50, 50), (1, 28, 28))
    with pytest.raises(DataError, match="not images"):
        to_model_input(np.ones((5, 5), np.float32), (64,))


def test_ink_profile_measures_extent_and_polarity():
    x = np.zeros((50, 1, 28, 28), np.float32)
    x[:, :, 4:24, 10:18] = 1.0                             # ink 20 tall in 28
    x[:20, :, 4:24, 10:11] = 0.0                           # 40% of them thinner
    prof = ink_profile(x)
    assert prof == {"extent": pytest.approx(20 / 28), "light_ink": True,
                    "fill": pytest.approx(7 * 20 / 784)}   # lower quartile of the ink density
    stats = {"mode": "standard", "mean": [0.2], "std": [0.4]}
    assert ink_profile((x - 0.2) / 0.4, stats)["extent"] == pytest.approx(20 / 28)
    assert ink_profile(1.0 - x)["light_ink"] is False
    assert InkProfile.from_meta({"ink": prof}) == InkProfile(20 / 28, True, prof["fill"])
    assert InkProfile.from_meta({}) == InkProfile()


def test_ink_profile_of_real_digits():
    from dtnn.data import load_digits
    train, _ = load_digits()
    prof = ink_profile(train.x)
    assert prof["light_ink"] is True and prof["extent"] == pytest.approx(1.0)


def _png(arr, mode="L"):
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def test_decode_grey_colour_and_transparent_images():
    grey = decode_image(_png(np.array([[0, 255], [128, 64]], np.uint8)))
    np.testing.assert_allclose(grey, [[0, 1], [128 / 255, 64 / 255]], atol=1e-6)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[1, 1] = (0, 0, 0, 255)                            # one opaque black pixel
    out = decode_image(_png(rgba, "RGBA"))
    assert out.shape == (4, 4) and out[1, 1] == 0.0 and out[0, 0] == 1.0
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[0, 0] = (255, 255, 255)
    colour[1, 1] = (255, 0, 0)                             # colour becomes luma
    out = decode_image(_png(colour, "RGB"))
    assert out.shape == (2, 2) and out[0, 0] == 1.0 and 0.2 < out[1, 1] < 0.4
    sixteen = Image.fromarray(np.array([[0, 65535]], np.uint16))
    buf = io.BytesIO()
    sixteen.save(buf, format="PNG")
    np.testing.assert_allclose(decode_image(buf.getvalue()), [[0.0, 1.0]])


def test_large_drawings_are_block_averaged_first():
    small = paper(300, 600)
    small[50:250, 280:300] = 0.0
    big = np.kron(small, np.ones((3, 3), np.float32))      # the same at 900x1800
    np.testing.assert_allclose(prepare_image(big, (1, 28, 28), MNIST),
                               prepare_image(small, (1, 28, 28), MNIST), atol=1e-5)


def test_decode_refuses_junk_empty_and_huge_images():
    with pytest.raises(DataError, match="not an image"):
        decode_image(b"hello, world")
    with pytest.raises(DataError, match="empty"):
        decode_image(b"")
    with pytest.raises(DataError, match="cannot decode"):
        noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
        data = _png(noise)
        decode_image(data[:len(data) // 2])                      # truncated PNG
    big = io.BytesIO()
    Image.new("1", (5000, 5000)).save(big, format="PNG")
    with pytest.raises(DataError, match="larger than"):
        decode_image(big.getvalue())


def test_segment_a_synthetic_line_of_characters():
    ink = np.zeros((60, 200), np.float32)
    ink[10:50, 20:26] = 1.0        # "1"
    ink[22:26, 60:90] = 1.0        # "=": two bars overlapping horizontally -> one character
    ink[34:38, 62:92] = 1.0
    ink[10:50, 120:160] = 1.0      # a block
    ink[12:48, 124:156] = 0.0      # ... hollow: "0"
    ink[55, 5] = 1.0               # a speck, dropped
    chars = segment(ink)
    assert [c.box for c in chars] == [(10, 50, 20, 26), (22, 38, 60, 92), (10, 50, 120, 160)]
    # each character keeps only its own strokes
    assert chars[1].ink.sum() == pytest.approx(4 * 30 + 4 * 30)
    xs = [to_model_input(c.ink, (1, 28, 28), MNIST) for c in chars]
    assert all(x.shape == (1, 28, 28) for x in xs)


def test_segment_keeps_neighbours_strokes_out_of_a_box():
    ink = np.zeros((40, 60), np.float32)
    ink[5:35, 5:20] = np.eye(30, 15, dtype=np.float32)    # diagonal-ish stroke
    ink[5:35, 22:24] = 1.0                                # separate bar to the right
    chars = segment(ink)
    assert len(chars) == 2 and chars[0].box[3] <= chars[1].box[2]


def test_transcription_and_latex():
    assert transcribe(["1", "7"]) == {"text": "17", "latex": "$17$"}
    assert transcribe(["\\alpha", "x", "+", "2"]) == {"text": "\\alpha x + 2",
                                                       "latex": "$\\alpha x+2$"}
    assert transcribe(["Sneaker", "Bag"]) == {"text": "Sneaker Bag", "latex": None}
    assert transcribe(["T-shirt/top"])["latex"] is None


def test_ink_map_of_colour_image():
    rgb = np.ones((10, 10, 3), np.float32)
    rgb[4:6, 4:6] = 0.0
    ink = ink_map(rgb)
    assert ink[5, 5] == 1.0 and ink[0, 0] == 0.0


def test_thin_strokes_are_thickened_to_the_training_density_thick_ones_kept():
    ink = np.zeros((300, 300), np.float32)
    ink[20:280, 100:104] = 1.0                              # 4 px pen, 260 px tall
    ink[20:24, 100:200] = 1.0
    thin = to_model_input(ink, (1, 8, 8), InkProfile(1.0, True))
    grown = to_model_input(ink, (1, 8, 8), InkProfile(1.0, True, 0.25))
    assert thin.mean() < 0.2 and grown.mean() >= 0.25
    assert grown.mean() < 0.35                             # the smallest growth that gets there
    assert (grown >= thin - 1e-6).sum() > 0.9 * grown.size  # grows, never thins
    thick = np.zeros((300, 300), np.float32)
    thick[20:280, 60:240] = 1.0                             # already dense: left alone
    np.testing.assert_array_equal(to_model_input(thick, (1, 8, 8), InkProfile(1.0, True, 0.3)),
                                  to_model_input(thick, (1, 8, 8), InkProfile(1.0, True)))


def test_every_page_asset_is_installed_as_package_data():
    import fnmatch
    import os
    import re
    import dtnn.serve
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    setup = open(os.path.join(root, "setup.py")).read()
    globs = re.findall(r'"(static/\*\.[a-z]+)"', setup)
    static = os.path.join(os.path.dirname(dtnn.serve.__file__), "static")
    for name in os.listdir(static):
        assert any(fnmatch.fnmatch(f"static/{name}", g) for g in globs), name
