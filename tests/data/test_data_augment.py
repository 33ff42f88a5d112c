"""Augment: random shift = np.roll of centred content, flips, reproducibility, and
randomness keyed by the sample (1 and N processes see the same augmented samples)."""
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
    y = Augment(shift=2, seed=0)(x, epoch=0)
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
    y = Augment(shift=2, seed=1)(x, epoch=3, indices=np.arange(64) + 640)
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


def test_reproducible_from_seed_epoch_and_sample_index():
    x = centred_batch()
    idx = np.arange(100, 164)
    aug = Augment(shift=2, flip=True, seed=7)
    a = aug(x, epoch=1, indices=idx)
    np.testing.assert_array_equal(a, Augment(shift=2, flip=True, seed=7)(x, epoch=1,
                                                                          indices=idx))
    for kw in ({"epoch": 2, "indices": idx}, {"epoch": 1, "indices": idx + 1}):
        assert not np.array_equal(a, aug(x, **kw)), kw
    assert not np.array_equal(a, Augment(shift=2, flip=True, seed=8)(x, epoch=1, indices=idx))
    # in-place use (as the loader does) gives the same result
    buf = x.copy()
    aug(buf, epoch=1, indices=idx, out=buf)
    np.testing.assert_array_equal(buf, a)


def test_a_sample_is_augmented_the_same_in_any_batch():
    x = centred_batch(n=12)
    idx = np.arange(500, 512)
    aug = Augment(shift=2, flip=True, seed=3)
    whole = aug(x, epoch=4, indices=idx)
    perm = np.random.default_rng(0).permutation(12)
    np.testing.assert_array_equal(aug(x[perm], epoch=4, indices=idx[perm]), whole[perm])
    for part in np.array_split(np.arange(12), 5):
        np.testing.assert_array_equal(aug(x[part], epoch=4, indices=idx[part]), whole[part])


def test_n_ranks_see_the_augmented_samples_of_one_process():
    from dtnn.data import BatchLoader, Dataset
    x = centred_batch(n=96)
    ds = Dataset(x, np.arange(96) % 3, ["a", "b", "c"], "aug")
    aug = Augment(shift=2, flip=True, seed=5)
    for world in (2, 4):
        one = BatchLoader(ds, 8 * world, seed=1, augment=aug)
        ranks = [BatchLoader(ds, 8, seed=1, rank=r, world_size=world, augment=aug)
                 for r in range(world)]
        for epoch in (0, 3):
            steps = zip(one.epoch(epoch), *(l.epoch(epoch) for l in ranks))
            for (xb, yb), *parts in steps:
                np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), xb)
                np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), yb)


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


def _splitmix_reference(seed, epoch, index, draw):
    """The augmentation's random number in plain Python integers (an independent
    implementation of the documented hash: splitmix64's finaliser over a chained key)."""
    M = (1 << 64) - 1
    golden = 0x9E3779B97F4A7C15

    def mix(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        return z ^ (z >> 31)

    key = mix((((0xA6 << 56) ^ (seed & 0xFFFFFFFFFFFFFF)) + golden) & M)
    key = mix((key + epoch * golden) & M)
    key = mix((key + draw * golden) & M)
    z = mix((key + index * golden) & M)
    return (z >> 11) * (1.0 / (1 << 53))


def test_random_numbers_match_a_plain_integer_reference():
    """The cached per-(seed, epoch, draw) key and the batched draws give exactly the
    numbers of the hash computed from scratch for each sample."""
    from dtnn.data.augment import sample_uniform, sample_uniforms
    idx = np.array([0, 1, 7, 59999, 123456789], np.int64)
    for seed, epoch in [(0, 0), (3, 11), (2**40 + 5, 2)]:
        both = sample_uniforms(seed, epoch, idx, (0, 1, 2))
        for draw in (0, 1, 2):
            ref = [_splitmix_reference(seed, epoch, int(i), draw) for i in idx]
            assert both[draw].tolist() == ref
            assert sample_uniform(seed, epoch, idx, draw).tolist() == ref
