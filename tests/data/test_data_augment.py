"""Augment: random shift = np.roll of centred content, flips, reproducibility."""
import numpy as np

from dtnn.data import Augment


def centred_batch(n=64, c=2, h=9, w=11, border=2, seed=0):
    # random content with a zero border, so a shift of <= border loses nothing
    x = np.zeros((n, c, h, w), np.float32)
    x[:, :, border:h - border, border:w - border] = np.random.default_rng(seed).random(
        (n, c, h - 2 * border, w - 2 * border)) + 0.1
    return x


def find_roll(src, dst, s):
    for dy in range(-s, s + 1):
        for dx in range(-s, s + 1):
            if np.array_equal(np.roll(src, (dy, dx), axis=(-2, -1)), dst):
                return dy, dx
    return None


def test_single_pixel_moves_like_roll():
    x = np.zeros((200, 1, 7, 7), np.float32)
    x[:, 0, 3, 3] = 1.0
    y = Augment(shift=2, seed=0)(x, epoch=0, rank=0, step=0)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.all(y.sum(axis=(1, 2, 3)) == 1.0)            # the pixel is never lost
    offsets = set()
    for i in range(len(x)):
        r = find_roll(x[i], y[i], 2)
        assert r is not None
        offsets.add(r)
    assert len(offsets) == 25                               # all 5x5 offsets occur


def test_shift_is_roll_of_whole_image_and_crops_at_border():
    x = centred_batch(border=2)
    y = Augment(shift=2, seed=1)(x, epoch=3, rank=1, step=5)
    moved = 0
    for i in range(len(x)):
        r = find_roll(x[i], y[i], 2)
        assert r is not None, i
        moved += r != (0, 0)
    assert moved > len(x) // 2
    # content at the edge is cropped, not wrapped around
    edge = np.zeros((50, 1, 4, 4), np.float32)
    edge[:, 0, :, 0] = 1.0
    out = Augment(shift=1, seed=0)(edge)
    assert out.sum() < edge.sum()
    assert np.all(out[:, 0, :, 3] == 0.0)


def test_reproducible_from_seed_epoch_rank_step():
    x = centred_batch()
    aug = Augment(shift=2, flip=True, seed=7)
    a = aug(x, epoch=1, rank=0, step=3)
    np.testing.assert_array_equal(a, Augment(shift=2, flip=True, seed=7)(x, epoch=1, rank=0,
                                                                          step=3))
    for kw in ({"epoch": 2, "rank": 0, "step": 3}, {"epoch": 1, "rank": 1, "step": 3},
               {"epoch": 1, "rank": 0, "step": 4}):
        assert not np.array_equal(a, aug(x, **kw)), kw
    assert not np.array_equal(a, Augment(shift=2, flip=True, seed=8)(x, epoch=1, rank=0, step=3))
    # in-place use (as the loader does) gives the same result
    buf = x.copy()
    aug(buf, epoch=1, rank=0, step=3, out=buf)
    np.testing.assert_array_equal(buf, a)


def test_flip_only_when_enabled():
    x = centred_batch(border=0)
    no_flip = Augment(shift=0, flip=False)(x)
    np.testing.assert_array_equal(no_flip, x)
    y = Augment(shift=0, flip=True, seed=2)(x)
    flipped = np.array([np.array_equal(y[i], x[i, :, :, ::-1]) for i in range(len(x))])
    same = np.array([np.array_equal(y[i], x[i]) for i in range(len(x))])
    assert np.all(flipped ^ same)
    assert 10 < flipped.sum() < 54
    assert Augment(shift="1", flip="yes").config() == {"shift": 1, "flip": True, "seed": 0}
