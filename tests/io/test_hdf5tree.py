"""write_tree / read_tree round trips (dtypes, shapes, scalars, JSON values)."""
import math

import h5py
import numpy as np
import pytest

from dtnn.io.hdf5tree import JSON_ATTR_LIMIT, read_json, read_tree, write_json, write_tree


def roundtrip(tmp_path, tree):
    path = tmp_path / "tree.h5"
    with h5py.File(path, "w") as f:
        write_tree(f.create_group("t"), tree)
    with h5py.File(path, "r") as f:
        return read_tree(f["t"])


def assert_same(a, b, where="tree"):
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype, where
        assert a == b, where
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_arrays_keep_dtype_and_shape(tmp_path):
    rng = np.random.default_rng(0)
    tree = {
        "f16": rng.standard_normal((3, 4)).astype(np.float16),
        "f32": rng.standard_normal((2, 3, 4, 5)).astype(np.float32),
        "f64": rng.standard_normal(7),
        "i8": np.arange(-5, 5, dtype=np.int8),
        "u16": np.arange(9, dtype=np.uint16).reshape(3, 3),
        "i64": np.array([2 ** 62, -2 ** 62], np.int64),
        "u64": np.array([2 ** 64 - 1], np.uint64),
        "bool": rng.random(11) < 0.5,
        "c64": (rng.standard_normal(4) + 1j * rng.standard_normal(4)).astype(np.complex64),
        "big_endian": np.arange(6, dtype=">i4"),
        "zero_d": np.array(3.5, np.float32),
        "empty": np.zeros((0, 3), np.float32),
        "fortran": np.asfortranarray(rng.standard_normal((3, 4)).astype(np.float32)),
    }
    back = roundtrip(tmp_path, tree)
    assert_same(tree, back)
    assert back["zero_d"].shape == () and isinstance(back["zero_d"], np.ndarray)


def test_scalars_strings_and_json_values(tmp_path):
    tree = {
        "np_f32": np.float32(1.25),
        "np_i64": np.int64(-7),
        "np_bool": np.bool_(True),
        "int": 3,
        "huge_int": 2 ** 100 + 1,  # e.g. PCG64 state words
        "float": 0.1,
        "nan": float("nan"),
        "bool": False,
        "none": None,
        "text": "héllo / wörld",
        "list": [1, 2.5, "x", None, [True]],
        "small_dict": {"a": 1, "b": {"c": [1, 2]}, "key/with/slash": "ok"},
        "rng": np.random.default_rng(5).bit_generator.state,
    }
    back = roundtrip(tmp_path, tree)
    assert_same(tree, back)
    assert type(back["np_f32"]) is np.float32 and type(back["int"]) is int


def test_nested_dicts_with_arrays_become_groups(tmp_path):
    tree = {"opt": {"steps": 5, "exp_avg": np.ones(4, np.float32),
                    "inner": {"deep": {"x": np.arange(3)}, "note": "hi"}},
            "empty_dict": {}}
    path = tmp_path / "g.h5"
    with h5py.File(path, "w") as f:
        write_tree(f, tree)
    with h5py.File(path, "r") as f:
        assert isinstance(f["opt"], h5py.Group)
        assert isinstance(f["opt/exp_avg"], h5py.Dataset)   # named datasets for other tools
        assert isinstance(f["opt/inner/deep/x"], h5py.Dataset)
        back = read_tree(f)
    assert_same(tree, back)


def test_tuples_come_back_as_lists(tmp_path):
    back = roundtrip(tmp_path, {"betas": (0.9, 0.999)})
    assert back["betas"] == [0.9, 0.999]


def test_long_json_goes_to_a_dataset(tmp_path):
    big = {"layers": [{"type": "dense", "units": i} for i in range(3000)]}
    path = tmp_path / "j.h5"
    with h5py.File(path, "w") as f:
        write_json(f, "config", big)
        write_json(f, "small", {"a": 1})
        write_tree(f.create_group("t"), {"big": big})
    with h5py.File(path, "r") as f:
        assert "config" in f and "config" not in f.attrs
        assert "small" in f.attrs
        assert read_json(f, "config") == big
        assert read_json(f, "small") == {"a": 1}
        assert read_tree(f["t"]) == {"big": big}
        with pytest.raises(KeyError):
            read_json(f, "nothing")
    assert len(str(big)) > JSON_ATTR_LIMIT


@pytest.mark.parametrize("tree,error", [
    ({"a/b": np.zeros(2)}, ValueError),
    ({"": np.zeros(2)}, ValueError),
    ({"d": {1: np.zeros(2)}}, TypeError),
    ({"obj": np.array([object()], dtype=object)}, TypeError),
    ({"str_array": np.array(["a", "b"])}, TypeError),
    ({"list_of_arrays": [np.zeros(2)]}, TypeError),
    ({"thing": object()}, TypeError),
])
def test_unsupported_values_raise(tmp_path, tree, error):
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        with pytest.raises(error):
            write_tree(f, tree)


def test_write_tree_needs_a_dict(tmp_path):
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        with pytest.raises(TypeError):
            write_tree(f, [1, 2])
