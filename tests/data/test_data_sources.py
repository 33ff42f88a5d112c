"""load_dataset dispatch, the digits source and the synthetic source."""
import numpy as np
import pytest

from dtnn.data import DATASETS, load_dataset
from dtnn.errors import ConfigError


def test_registry_and_option_checking():
    load_dataset("synthetic", n_train=4, n_test=0, shape=(3,))  # registers everything
    assert {"idx", "fashion-mnist", "npz", "hdf5", "digits", "synthetic"} <= set(DATASETS.names())
    with pytest.raises(ConfigError, match="unknown dataset 'mnits'"):
        load_dataset("mnits")
    with pytest.raises(ConfigError, match="no option 'n_trian'.*n_train"):
        load_dataset("synthetic", n_trian=10)
    with pytest.raises(ConfigError, match="takes no path"):
        load_dataset("digits", "/tmp")


def test_digits_split_is_stratified_and_seeded():
    train, test = load_dataset("digits")
    assert len(train) + len(test) == 1797
    assert train.x.shape[1:] == (1, 8, 8) and train.x.dtype == np.float32
    assert 0.0 <= train.x.min() and train.x.max() == 1.0
    full = np.bincount(np.concatenate([train.y, test.y]), minlength=10)
    np.testing.assert_array_equal(np.bincount(test.y, minlength=10), np.floor(full * 0.2 + 0.5))
    again, _ = load_dataset("digits")
    np.testing.assert_array_equal(again.x, train.x)
    other, _ = load_dataset("digits", seed=1)
    assert not np.array_equal(other.y, train.y)
    small, _ = load_dataset("digits", test_fraction="0.5")
    assert abs(len(small) - 1797 / 2) < 10
    everything, none = load_dataset("digits", test_fraction=0)
    assert none is None and len(everything) == 1797
    with pytest.raises(ConfigError, match="test_fraction"):
        load_dataset("digits", test_fraction=1.0)


def test_synthetic_deterministic_and_independent_streams():
    a, at = load_dataset("synthetic", shape=(2, 9, 7), classes=4, n_train=50, n_test=20, seed=3)
    b, bt = load_dataset("synthetic", shape="2x9x7", classes="4", n_train="50", n_test=20, seed=3)
    assert a.x.shape == (50, 2, 9, 7) and at.x.shape == (20, 2, 9, 7)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(at.y, bt.y)
    c, ct = load_dataset("synthetic", shape=(2, 9, 7), classes=4, n_train=80, n_test=20, seed=3)
    np.testing.assert_array_equal(ct.x, at.x)      # test set independent of n_train
    np.testing.assert_array_equal(c.x[:50], a.x)
    d, _ = load_dataset("synthetic", shape=(2, 9, 7), classes=4, n_train=50, n_test=0, seed=4)
    assert not np.allclose(d.x, a.x)
    f, _ = load_dataset("synthetic", shape=(16,), n_train=10, n_test=0)
    assert f.x.shape == (10, 16)
    with pytest.raises(ConfigError, match="shape"):
        load_dataset("synthetic", shape=(1, 2))


def test_synthetic_is_learnable():
    train, test = load_dataset("synthetic", shape=(1, 12, 12), classes=5, n_train=500,
                               n_test=200, noise=2.0)
    # nearest class mean (estimated on train) classifies the test set well
    means = np.stack([train.x[train.y == k].mean(0) for k in range(5)]).reshape(5, -1)
    d = ((test.x.reshape(len(test), 1, -1) - means[None]) ** 2).sum(-1)
    assert np.mean(d.argmin(1) == test.y) > 0.9
    # ... but it is not trivial: a sample is far from its template
    assert float(np.std(train.x - means[train.y].reshape(train.x.shape))) > 1.5
