"""IDX / Fashion-MNIST loading, including corrupt and missing files."""
import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from dtnn.data import FASHION_MNIST_CLASSES, load_dataset, write_idx
from dtnn.data.idx import IMAGE_MAGIC, LABEL_MAGIC
from dtnn.errors import ConfigError, DataError

REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


def make_idx_dir(root: Path, n_train=30, n_test=12, h=5, w=7, gz_train=True, gz_test=False,
                 seed=0, dot_names=False):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    data = {}
    for split, n, gz in (("train", n_train, gz_train), ("t10k", n_test, gz_test)):
        if n is None:
            continue
        images = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        sep = "." if dot_names else "-"
        suffix = ".gz" if gz else ""
        write_idx(root / f"{split}-images{sep}idx3-ubyte{suffix}", images)
        write_idx(root / f"{split}-labels{sep}idx1-ubyte{suffix}", labels)
        data[split] = (images, labels)
    return data


def assert_one_line_error(excinfo, *needles):
    msg = str(excinfo.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_load_gz_and_raw_round_trip(tmp_path):
    data = make_idx_dir(tmp_path / "mnistish")
    train, test = load_dataset("idx", str(tmp_path / "mnistish"))
    for ds, (images, labels) in ((train, data["train"]), (test, data["t10k"])):
        assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64
        assert ds.x.shape == (len(images), 1, 5, 7) and ds.x.flags.c_contiguous
        np.testing.assert_allclose(ds.x[:, 0], images.astype(np.float32) / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(ds.y, labels)
    assert train.classes == [str(i) for i in range(10)]
    assert train.x.min() >= 0.0 and train.x.max() <= 1.0


def test_gzip_detected_from_content_and_dot_names(tmp_path):
    d = tmp_path / "plain"
    data = make_idx_dir(d, gz_train=False, gz_test=True, dot_names=True)
    train, test = load_dataset("idx", str(d))
    np.testing.assert_array_equal(test.y, data["t10k"][1])
    # a gzipped file without the .gz suffix is still read correctly
    raw = (d / "train-labels.idx1-ubyte").read_bytes()
    (d / "train-labels.idx1-ubyte").write_bytes(gzip.compress(raw))
    train2, _ = load_dataset("idx", str(d))
    np.testing.assert_array_equal(train2.y, data["train"][1])


def test_fashion_names_from_directory_name_and_classes_option(tmp_path):
    make_idx_dir(tmp_path / "my-fashion-mnist")
    train, _ = load_dataset("idx", str(tmp_path / "my-fashion-mnist"))
    assert train.classes == FASHION_MNIST_CLASSES
    train, _ = load_dataset("idx", str(tmp_path / "my-fashion-mnist"), classes="a,b,c,d,e,f,g,h,i,j")
    assert train.classes[0] == "a" and len(train.classes) == 10


def test_test_split_optional(tmp_path):
    make_idx_dir(tmp_path / "d", n_test=None)
    train, test = load_dataset("idx", str(tmp_path / "d"))
    assert test is None and len(train) == 30


def test_half_test_split_is_an_error(tmp_path):
    d = tmp_path / "d"
    make_idx_dir(d)
    os.remove(d / "t10k-labels-idx1-ubyte")
    with pytest.raises(DataError) as e:
        load_dataset("idx", str(d))
    assert_one_line_error(e, "t10k-labels-idx1-ubyte")


def test_wrong_magic_names_file(tmp_path):
    d = tmp_path / "d"
    make_idx_dir(d, gz_train=False)
    # labels written where images are expected
    (d / "train-images-idx3-ubyte").write_bytes((d / "train-labels-idx1-ubyte").read_bytes())
    with pytest.raises(DataError) as e:
        load_dataset("idx", str(d))
    assert_one_line_error(e, str(d / "train-images-idx3-ubyte"), f"0x{LABEL_MAGIC:08x}",
                          f"expected 0x{IMAGE_MAGIC:08x}")


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_data(tmp_path, gz):
    d = tmp_path / "d"
    make_idx_dir(d, gz_train=False)
    name = "train-images-idx3-ubyte"
    blob = (d / name).read_bytes()[:-3]
    os.remove(d / name)
    if gz:
        name += ".gz"
        blob = gzip.compress(blob)
    (d / name).write_bytes(blob)
    with pytest.raises(DataError) as e:
        load_dataset("idx", str(d))
    assert_one_line_error(e, name, "truncated")


def test_truncated_gzip_stream(tmp_path):
    d = tmp_path / "d"
    make_idx_dir(d, gz_train=True)
    p = d / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(DataError) as e:
        load_dataset("idx", str(d))
    assert_one_line_error(e, p.name, "gzip")


def test_trailing_bytes_and_short_header(tmp_path):
    d = tmp_path / "d"
    make_idx_dir(d, gz_train=False)
    p = d / "train-labels-idx1-ubyte"
    p.write_bytes(p.read_bytes() + b"\0\0")
    with pytest.raises(DataError) as e:
        load_dataset("idx", str(d))
    assert_one_line_error(e, p.name, "2 unexpected bytes")
    p.write_bytes(b"\0\0")
    with pytest.raises(DataError) as e:
        load_dataset("idx", str(d))
    assert_one_line_error(e, p.name, "too short")


def test_count_mismatch(tmp_path):
    d = tmp_path / "d"
    make_idx_dir(d, gz_train=False)
    write_idx(d / "train-labels-idx1-ubyte", np.zeros(29, np.uint8))
    with pytest.raises(DataError) as e:
        load_dataset("idx", str(d))
    assert_one_line_error(e, "train-labels-idx1-ubyte", "29 labels", "30 images")


def test_label_out_of_range(tmp_path):
    d = tmp_path / "d"
    make_idx_dir(d, gz_train=False)
    labels = np.zeros(30, np.uint8)
    labels[3] = 10
    write_idx(d / "train-labels-idx1-ubyte", labels)
    with pytest.raises(DataError) as e:
        load_dataset("idx", str(d))
    assert_one_line_error(e, "train-labels-idx1-ubyte", "label 10")
    train, _ = load_dataset("idx", str(d), classes=11)
    assert train.y[3] == 10


def test_missing_file_and_directory(tmp_path):
    d = tmp_path / "d"
    make_idx_dir(d)
    os.remove(d / "train-labels-idx1-ubyte.gz")
    with pytest.raises(DataError) as e:
        load_dataset("idx", str(d))
    assert_one_line_error(e, "train-labels-idx1-ubyte", "not found")
    with pytest.raises(DataError) as e:
        load_dataset("idx", str(tmp_path / "nope"))
    assert_one_line_error(e, "nope")
    with pytest.raises(ConfigError):
        load_dataset("idx")


def test_fashion_mnist_missing_suggests_package(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("fashion-mnist", str(tmp_path / "absent"))
    assert_one_line_error(e, "absent", "apt-get install dataset-fashion-mnist")


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist():
    train, test = load_dataset("fashion-mnist")
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert train.classes == FASHION_MNIST_CLASSES
    np.testing.assert_array_equal(np.bincount(train.y, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(test.y, minlength=10), [1000] * 10)
    assert 0.0 == train.x.min() and train.x.max() == 1.0
    assert 0.27 < float(train.x.mean()) < 0.30   # the well-known mean pixel of 0.286
