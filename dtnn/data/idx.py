"""MNIST-format IDX files: ``idx`` (any directory) and ``fashion-mnist`` sources.

An IDX file is a 4-byte big-endian magic number ``0x0000TTDD`` (TT = element type,
0x08 for unsigned bytes; DD = number of dimensions), then DD big-endian uint32
dimension sizes, then the elements in C order.  Image files are ``0x00000803``
(N, rows, cols), label files ``0x00000801`` (N,).

A directory holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte`` and,
optionally, ``t10k-images-idx3-ubyte``/``t10k-labels-idx1-ubyte``; each may be
gzipped (detected from its content; the ``.gz`` suffix is optional) and the
``-idx3-ubyte`` part may also be spelled ``.idx3-ubyte``.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from dtnn.data._opts import ClassesOption, as_classes
from dtnn.data.dataset import DATASETS, Dataset, pixels_to_float
from dtnn.errors import ConfigError, DataError

IMAGE_MAGIC = 0x00000803
LABEL_MAGIC = 0x00000801

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

_GZIP_MAGIC = b"\x1f\x8b"


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def read_file(path) -> bytes:
    """Whole file contents; DataError naming the file when it is missing or unreadable."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or _one_line(e)})") from None


def read_bytes(path: Path) -> bytes:
    """Whole file contents, transparently gunzipped; DataError on any failure."""
    raw = read_file(path)
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt or truncated gzip data ({_one_line(e)})") from None
    return raw


def parse_idx(raw: bytes, path: Path, magic: int, what: str) -> np.ndarray:
    """Parse one IDX buffer of unsigned bytes into an array (a read-only view of ``raw``)."""
    if len(raw) < 4:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{path}: bad magic number 0x{found:08x}, expected 0x{magic:08x} "
                        f"for {what} file")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} of {header} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    need = int(np.prod(dims, dtype=np.int64))
    have = len(raw) - header
    shape = " x ".join(str(d) for d in dims)
    if have < need:
        raise DataError(f"{path}: truncated: header declares {shape} = {need} bytes of data "
                        f"but the file has {have}")
    if have > need:
        raise DataError(f"{path}: {have - need} unexpected bytes after the {shape} = {need} "
                        "bytes of data declared in the header")
    return np.frombuffer(raw, dtype=np.uint8, count=need, offset=header).reshape(dims)


def read_idx_images(path) -> np.ndarray:
    """uint8 array (N, rows, cols) from an IDX image file."""
    path = Path(path)
    return parse_idx(read_bytes(path), path, IMAGE_MAGIC, "an image")


def read_idx_labels(path) -> np.ndarray:
    """uint8 array (N,) from an IDX label file."""
    path = Path(path)
    return parse_idx(read_bytes(path), path, LABEL_MAGIC, "a label")


def write_idx(path, array: np.ndarray, compress: Optional[bool] = None) -> None:
    """Write a uint8 array as an IDX file (gzipped if ``compress`` or the name ends in .gz).

    Used by tests and handy for exporting data in MNIST format.
    """
    path = Path(path)
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    if arr.ndim not in (1, 3):
        raise ValueError(f"IDX export supports (N,) labels or (N, H, W) images, got {arr.shape}")
    magic = LABEL_MAGIC if arr.ndim == 1 else IMAGE_MAGIC
    blob = (magic.to_bytes(4, "big") + np.asarray(arr.shape, dtype=">u4").tobytes()
            + arr.tobytes())
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        blob = gzip.compress(blob, compresslevel=6)
    path.write_bytes(blob)


def _find(directory: Path, split: str, kind: str) -> Optional[Path]:
    tag = "idx3" if kind == "images" else "idx1"
    for stem in (f"{split}-{kind}-{tag}-ubyte", f"{split}-{kind}.{tag}-ubyte"):
        for name in (stem + ".gz", stem):
            p = directory / name
            if p.is_file():
                return p
    return None


def _expected(directory: Path, split: str, kind: str) -> str:
    tag = "idx3" if kind == "images" else "idx1"
    return f"{directory / f'{split}-{kind}-{tag}-ubyte'}[.gz]"


def _load_pair(images_path: Path, labels_path: Path, classes: List[str],
               name: str) -> Dataset:
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path)
    if len(images) != len(labels):
        raise DataError(f"{labels_path}: {len(labels)} labels but {images_path.name} has "
                        f"{len(images)} images")
    if len(labels) and int(labels.max()) >= len(classes):
        raise DataError(f"{labels_path}: label {int(labels.max())} out of range for "
                        f"{len(classes)} classes")
    x = pixels_to_float(images)[:, None, :, :]
    return Dataset(x, labels.astype(np.int64), classes, name,
                   {"source": "idx", "images": str(images_path), "labels": str(labels_path)})


def _looks_like_fashion(directory: Path) -> bool:
    return "fashion" in str(directory.resolve()).lower()


@DATASETS.register("idx")
def load_idx(path, *, classes: ClassesOption = None,
             only: Optional[str] = None) -> Tuple[Optional[Dataset], Optional[Dataset]]:
    """Train (and, if present, t10k test) sets from a directory of IDX files.

    ``classes``: class names (list, comma-separated string or count).  Default:
    Fashion-MNIST names if the directory path mentions "fashion", else "0".."9".
    Labels must be below the number of classes.  ``only="test"``: just the t10k files
    (returns ``(None, test)``).
    """
    if path is None:
        raise ConfigError("dataset 'idx' needs a path: the directory holding the IDX files")
    directory = Path(path)
    if not directory.is_dir():
        if directory.exists():
            raise DataError(f"{directory}: not a directory (the idx source needs the directory "
                            "holding the IDX files)")
        raise DataError(f"{directory}: no such directory")
    names = as_classes("classes", classes)
    if names is None:
        names = (list(FASHION_MNIST_CLASSES) if _looks_like_fashion(directory)
                 else [str(i) for i in range(10)])
    base = directory.resolve().name or "idx"

    found = {}
    for split in ("train", "t10k"):
        for kind in ("images", "labels"):
            found[split, kind] = _find(directory, split, kind)
    if only == "test":
        for kind in ("images", "labels"):
            if found["t10k", kind] is None:
                raise DataError(f"{_expected(directory, 't10k', kind)}: file not found")
        return None, _load_pair(found["t10k", "images"], found["t10k", "labels"], names,
                                f"{base}-test")
    for kind in ("images", "labels"):
        if found["train", kind] is None:
            raise DataError(f"{_expected(directory, 'train', kind)}: file not found")
    train = _load_pair(found["train", "images"], found["train", "labels"], names, base)

    test = None
    have_test = [found["t10k", k] is not None for k in ("images", "labels")]
    if any(have_test):
        for kind, present in zip(("images", "labels"), have_test):
            if not present:
                raise DataError(f"{_expected(directory, 't10k', kind)}: file not found (the "
                                "other t10k file is present)")
        test = _load_pair(found["t10k", "images"], found["t10k", "labels"], names,
                          f"{base}-test")
        if test.sample_shape != train.sample_shape:
            raise DataError(f"{found['t10k', 'images']}: images are {test.sample_shape[1:]} "
                            f"but training images are {train.sample_shape[1:]}")
    return train, test


@DATASETS.register("fashion-mnist")
def load_fashion_mnist(path=None, *,
                       only: Optional[str] = None) -> Tuple[Optional[Dataset], Optional[Dataset]]:
    """Fashion-MNIST (60000 train / 10000 test, 1x28x28, 10 classes) from IDX files.

    ``path`` defaults to ``/usr/share/datasets/fashion-mnist`` (Debian package
    ``dataset-fashion-mnist``).
    """
    directory = Path(path or FASHION_MNIST_DIR)
    if not directory.is_dir():
        raise DataError(f"{directory}: Fashion-MNIST not found (install it with "
                        "`apt-get install dataset-fashion-mnist`, or pass the directory "
                        "holding its IDX files)")
    train, test = load_idx(directory, classes=list(FASHION_MNIST_CLASSES), only=only)
    if train is not None:
        train.name = "fashion-mnist"
    if test is not None:
        test.name = "fashion-mnist-test"
    return train, test
