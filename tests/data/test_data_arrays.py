"""npz and HDF5 sources: layouts, round trips and error cases (same checks for both)."""
import h5py
import numpy as np
import pytest

from dtnn.data import Dataset, load_dataset, save_hdf5, save_npz
from dtnn.errors import DataError

FORMATS = ["npz", "hdf5"]


def write(fmt, path, **arrays):
    if fmt == "npz":
        np.savez(path, **arrays)
    else:
        with h5py.File(path, "w") as f:
            for k, v in arrays.items():
                if k == "classes":
                    f.create_dataset(k, data=np.asarray(v, dtype=object),
                                     dtype=h5py.string_dtype())
                else:
                    f.create_dataset(k, data=v)
    return str(path)


def fname(tmp_path, fmt):
    return tmp_path / ("d.npz" if fmt == "npz" else "d.h5")


def images(n, shape=(6, 5), seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n,) + shape, dtype=np.uint8)


def labels(n, k=3, seed=1):
    return np.random.default_rng(seed).integers(0, k, size=n)


def error_text(fmt, tmp_path, **arrays):
    p = write(fmt, fname(tmp_path, fmt), **arrays)
    with pytest.raises(DataError) as e:
        load_dataset(fmt, p)
    msg = str(e.value)
    assert "\n" not in msg and p in msg
    return msg


@pytest.mark.parametrize("fmt", FORMATS)
def test_uint8_hw_gets_channel_and_scaling(fmt, tmp_path):
    x, y = images(20), labels(20)
    xt, yt = images(7, seed=2), labels(7, seed=3)
    p = write(fmt, fname(tmp_path, fmt), x_train=x, y_train=y, x_test=xt, y_test=yt)
    train, test = load_dataset(fmt, p)
    assert train.x.shape == (20, 1, 6, 5) and test.x.shape == (7, 1, 6, 5)
    np.testing.assert_allclose(train.x[:, 0], x / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(test.y, yt)
    assert train.classes == [str(i) for i in range(max(y.max(), yt.max()) + 1)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_nchw_float_and_features_and_no_test(fmt, tmp_path):
    x = np.random.default_rng(0).normal(size=(9, 2, 4, 3)).astype(np.float64)
    p = write(fmt, fname(tmp_path, fmt), x_train=x, y_train=labels(9))
    train, test = load_dataset(fmt, p)
    assert test is None
    np.testing.assert_allclose(train.x, x.astype(np.float32))
    f = np.arange(12, dtype=np.float32).reshape(4, 3)
    p = write(fmt, tmp_path / ("f." + fmt), x_train=f, y_train=np.array([[0], [1], [0], [1]]))
    train, _ = load_dataset(fmt, p)
    assert train.x.shape == (4, 3) and train.y.tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_channels_last(fmt, tmp_path):
    x = images(5, shape=(8, 6, 3))
    p = write(fmt, fname(tmp_path, fmt), x_train=x, y_train=labels(5))
    with pytest.raises(DataError, match="channels_last=True"):
        load_dataset(fmt, p)
    train, _ = load_dataset(fmt, p, channels_last=True)
    assert train.x.shape == (5, 3, 8, 6)
    np.testing.assert_allclose(train.x[2, 1], x[2, :, :, 1] / 255.0, rtol=1e-6)
    train, _ = load_dataset(fmt, p, channels_last="false")
    assert train.x.shape == (5, 8, 6, 3)


@pytest.mark.parametrize("fmt", FORMATS)
def test_save_load_round_trip_with_class_names(fmt, tmp_path):
    rng = np.random.default_rng(0)
    tr = Dataset(rng.random((10, 1, 3, 3), dtype=np.float32), np.arange(10) % 4,
                 ["cat", "dog", "emu", "yak"])
    te = Dataset(rng.random((4, 1, 3, 3), dtype=np.float32), np.arange(4), tr.classes)
    p = fname(tmp_path, fmt)
    (save_npz if fmt == "npz" else save_hdf5)(p, tr, te)
    a, b = load_dataset(fmt, str(p))
    assert a.classes == ["cat", "dog", "emu", "yak"]
    np.testing.assert_array_equal(a.x, tr.x)
    np.testing.assert_array_equal(b.y, te.y)


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_keys(fmt, tmp_path):
    assert "missing required array 'x_train'" in error_text(fmt, tmp_path, y_train=labels(3))
    msg = error_text(fmt, tmp_path, x_train=images(3), y_train=labels(3), x_test=images(2))
    assert "'x_test' but not 'y_test'" in msg


@pytest.mark.parametrize("fmt", FORMATS)
def test_length_and_shape_errors(fmt, tmp_path):
    msg = error_text(fmt, tmp_path, x_train=images(5), y_train=labels(4))
    assert "5 samples" in msg and "4 labels" in msg
    msg = error_text(fmt, tmp_path, x_train=np.zeros(5), y_train=labels(5))
    assert "x_train must be" in msg
    msg = error_text(fmt, tmp_path, x_train=np.zeros((2, 1, 1, 2, 2)), y_train=labels(2))
    assert "shape (2, 1, 1, 2, 2)" in msg
    msg = error_text(fmt, tmp_path, x_train=images(4), y_train=labels(4),
                     x_test=images(2, shape=(5, 5)), y_test=labels(2))
    assert "x_test samples" in msg


@pytest.mark.parametrize("fmt", FORMATS)
def test_label_errors(fmt, tmp_path):
    assert "one-hot" in error_text(fmt, tmp_path, x_train=images(3), y_train=np.eye(3))
    assert "whole-number" in error_text(fmt, tmp_path, x_train=images(2),
                                        y_train=np.array([0.5, 1.0]))
    assert "negative" in error_text(fmt, tmp_path, x_train=images(2), y_train=np.array([0, -1]))
    msg = error_text(fmt, tmp_path, x_train=images(2), y_train=np.array([0, 2]),
                     classes=np.array(["a", "b"]))
    assert "label 2" in msg and "2 classes" in msg
    # without class names the labels must be 0..K-1: one stray 99 is not a 100-class task
    y = np.arange(20) % 10
    y[7] = 99
    msg = error_text(fmt, tmp_path, x_train=images(20), y_train=y)
    assert "labels go up to 99 but 10..98 never appear" in msg and "'classes'" in msg
    msg = error_text(fmt, tmp_path, x_train=images(4), y_train=np.array([0, 1, 3, 3]))
    assert "labels go up to 3 but 2 never appears" in msg
    bad = np.ones((2, 3, 3))
    bad[1, 1, 1] = np.nan
    assert "NaN" in error_text(fmt, tmp_path, x_train=bad, y_train=np.array([0, 1]))


@pytest.mark.parametrize("fmt", FORMATS)
def test_unreadable_and_missing_files(fmt, tmp_path):
    p = fname(tmp_path, fmt)
    with pytest.raises(DataError) as e:
        load_dataset(fmt, str(p))
    assert str(p) in str(e.value) and "not found" in str(e.value)
    p.write_bytes(b"this is not a container file at all")
    with pytest.raises(DataError) as e:
        load_dataset(fmt, str(p))
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_npy_file_is_explained(tmp_path):
    p = tmp_path / "one.npy"
    np.save(p, np.zeros(3))
    with pytest.raises(DataError, match="single-array .npy"):
        load_dataset("npz", str(p))
