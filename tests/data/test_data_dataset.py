"""Dataset validation, normalisation and the stratified split."""
import json

import numpy as np
import pytest

from dtnn.data import (Dataset, apply_normalization, normalize, normalize_array,
                       stratified_split)
from dtnn.errors import ConfigError, DataError


def make(n=40, shape=(2, 3, 3), k=4, seed=0, scale=(1.0, 5.0), shift=(0.5, -3.0)):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + shape).astype(np.float32)
    if len(shape) == 3:
        x *= np.asarray(scale, np.float32).reshape(1, -1, 1, 1)
        x += np.asarray(shift, np.float32).reshape(1, -1, 1, 1)
    return Dataset(x, rng.integers(0, k, n), [f"c{i}" for i in range(k)], "toy")


def test_dataset_validation():
    x = np.zeros((3, 1, 2, 2))
    ds = Dataset(x, [0, 1, 0], ["a", "b"])
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64 and ds.sample_shape == (1, 2, 2)
    with pytest.raises(DataError, match="3 samples but 2 labels"):
        Dataset(x, [0, 1], ["a", "b"])
    with pytest.raises(DataError, match="label 2 out of range"):
        Dataset(x, [0, 2, 1], ["a", "b"])
    with pytest.raises(DataError, match="shape"):
        Dataset(np.zeros((3, 2, 2)), [0, 1, 0], ["a", "b"])
    with pytest.raises(DataError, match="integers"):
        Dataset(x, [0.0, 1.0, 0.0], ["a", "b"])


def test_normalize_uses_train_stats_per_channel():
    train, test = make(200, seed=0), make(100, seed=1)
    raw_test = test.x.copy()
    stats = normalize(train, test)
    json.dumps(stats)
    np.testing.assert_allclose(train.x.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.x.std(axis=(0, 2, 3)), 1.0, atol=1e-5)
    assert stats["mean"][1] == pytest.approx(-3.0, abs=0.5)
    assert stats["std"][1] == pytest.approx(5.0, rel=0.15)
    # the test set got the *train* statistics, not its own
    mean = np.asarray(stats["mean"], np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(stats["std"], np.float32).reshape(1, -1, 1, 1)
    np.testing.assert_allclose(test.x, (raw_test - mean) / std, rtol=1e-5, atol=1e-5)
    assert abs(float(test.x.mean())) > 1e-4


def test_apply_normalization_later_matches():
    train, other = make(50, seed=0), make(50, seed=0)
    stats = normalize(train)
    apply_normalization(other, json.loads(json.dumps(stats)))
    np.testing.assert_allclose(other.x, train.x, atol=1e-6)
    with pytest.raises(DataError, match="2 channels"):
        apply_normalization(make(5, shape=(2, 3, 3)), {"mode": "standard", "mean": [0.0],
                                                       "std": [1.0]})
    with pytest.raises(ConfigError):
        apply_normalization(other, {"mean": [0.0]})


def test_normalize_array_preprocesses_raw_uint8_like_training():
    raw = np.random.default_rng(0).integers(0, 256, (20, 3, 4, 4), dtype=np.uint8)
    ds = Dataset(raw / np.float32(255.0), np.zeros(20, int), ["a"])
    stats = normalize(ds)
    out = normalize_array(raw[:5], stats)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ds.x[:5], atol=1e-6)
    buf = np.empty((5, 3, 4, 4), np.float32)
    assert normalize_array(raw[:5], stats, out=buf) is buf
    np.testing.assert_allclose(buf, ds.x[:5], atol=1e-6)
    with pytest.raises(DataError, match="input: has 1 channels"):
        normalize_array(np.zeros((2, 1, 4, 4), np.uint8), stats)


def test_normalize_features_constant_and_none():
    ds = make(30, shape=(5,))
    ds.x[:, 2] = 7.0
    normalize(ds)
    assert np.isfinite(ds.x).all()
    np.testing.assert_allclose(ds.x[:, 2], 0.0)
    np.testing.assert_allclose(ds.x[:, [0, 1, 3, 4]].std(0), 1.0, atol=1e-5)
    keep = make(10)
    before = keep.x.copy()
    stats = normalize(keep, None, mode="none")
    np.testing.assert_array_equal(keep.x, before)
    assert stats["mode"] == "none"
    with pytest.raises(ConfigError, match="normalisation mode"):
        normalize(keep, mode="minmax")


def test_stratified_split_proportions_and_determinism():
    y = np.repeat(np.arange(4), [50, 20, 7, 3])
    ds = Dataset(np.arange(len(y), dtype=np.float32).reshape(-1, 1), y, list("abcd"))
    tr, va = stratified_split(ds, 0.3, seed=5)
    np.testing.assert_array_equal(np.bincount(va.y, minlength=4), [15, 6, 2, 1])
    ids_tr, ids_va = tr.x[:, 0].astype(int), va.x[:, 0].astype(int)
    assert set(ids_tr).isdisjoint(ids_va) and len(ids_tr) + len(ids_va) == len(y)
    assert np.all(np.diff(ids_va) > 0) and np.all(np.diff(ids_tr) > 0)   # order kept
    np.testing.assert_array_equal(ds.y[ids_va], va.y)
    tr2, va2 = stratified_split(ds, 0.3, seed=5)
    np.testing.assert_array_equal(va2.x, va.x)
    _, va3 = stratified_split(ds, 0.3, seed=6)
    assert not np.array_equal(va3.x, va.x)
    with pytest.raises(ConfigError):
        stratified_split(ds, 1.0)
