"""BestOf inside Conv2D: grouped forward/backward choice, train vs inference keys,
nested Winograd tile choice, forced variant, results equal to the default variant."""
import numpy as np
import pytest

import dtnn.tune as T
from dtnn.conv import CONV_ALGORITHMS, ConvGeometry


@pytest.fixture(autouse=True)
def _fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("DTNN_TUNE_CACHE", str(tmp_path / "tune"))
    T.configure(T.TuneOptions(rounds=2, warmup=1))
    yield
    T.configure()


def _layer(algorithm="bestof", C=4, K=6, H=8):
    from dtnn.layers.conv import Conv2D
    layer = Conv2D(K, 3, padding=1, algorithm=algorithm)
    layer.build((C, H, H), np.random.default_rng(0))
    return layer


def _train_step(layer, x):
    y = layer.forward(x, training=True)
    layer.backward(np.ones_like(y))
    return y


def test_bestof_layer_tunes_and_matches_im2col():
    layer = _layer()
    ref = _layer("im2col")
    ref.params["weight"][...] = layer.params["weight"]
    x = np.random.default_rng(1).standard_normal((2, 4, 8, 8)).astype(np.float32)
    yr = ref.forward(x, training=True)
    ref.backward(np.ones_like(yr))
    for _ in range(40):
        y = _train_step(layer, x)
        np.testing.assert_allclose(y, yr, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(layer.grads["weight"], ref.grads["weight"], rtol=1e-3,
                                   atol=1e-3)
    bo = T.tuners()["conv"]
    key = layer.algorithm.key(layer.geometry(2), True)
    assert bo.settled(key)
    st = bo.state(key)
    assert set(st.stats) >= {"im2col", "winograd", "implicit", "direct"}
    assert layer.name in st.labels
    # the nested tile choice settled before winograd was compared
    assert T.tuners()["winograd_tile"].settled(key)
    # inference is a separate key, still untuned
    ikey = layer.algorithm.key(layer.geometry(2), False)
    assert ikey not in bo._states
    layer.forward(x, training=False)
    ibo = T.tuners()["conv_infer"]
    assert ibo.state(ikey).timed_calls == 1 and ibo.comm is None


def test_backward_runs_on_the_forward_variant(monkeypatch):
    layer = _layer()
    x = np.random.default_rng(1).standard_normal((2, 4, 8, 8)).astype(np.float32)
    seen = []
    for name, alg in layer.algorithm.algs.items():
        fwd, bwd = alg.forward, alg.backward

        def f(*a, _n=name, _f=fwd):
            seen.append(("f", _n))
            return _f(*a)

        def b(*a, _n=name, _b=bwd):
            seen.append(("b", _n))
            return _b(*a)
        monkeypatch.setattr(alg, "forward", f)
        monkeypatch.setattr(alg, "backward", b)
    for _ in range(12):
        _train_step(layer, x)
    for i in range(0, len(seen), 2):
        assert seen[i][0] == "f" and seen[i + 1] == ("b", seen[i][1])


def test_forced_variant(tmp_path):
    T.configure(T.TuneOptions(force={"conv": "implicit"}))
    layer = _layer()
    x = np.zeros((1, 4, 8, 8), np.float32)
    _train_step(layer, x)
    assert layer.algorithm._last is layer.algorithm.algs["implicit"]
    rows = T.collect()
    assert rows[0]["source"] == "forced"


def test_forced_variant_that_does_not_apply_falls_back_to_tuning():
    T.configure(T.TuneOptions(force={"conv": "winograd"}))
    from dtnn.layers.conv import Conv2D
    layer = Conv2D(4, 3, stride=2, padding=1, algorithm="bestof")
    layer.build((4, 8, 8), np.random.default_rng(0))
    _train_step(layer, np.zeros((1, 4, 8, 8), np.float32))
    assert T.collect()[0]["source"] == "tuning"


def test_config_and_zoo_accept_bestof():
    from dtnn.config import Config
    from dtnn.models import build_model
    cfg = Config()
    assert cfg.tune.rounds >= 1 and cfg.tune.options().use_cache
    model = build_model("simplecnn", (1, 28, 28), 10, conv_algorithm="bestof")
    assert model is not None
    assert "bestof" in CONV_ALGORITHMS.names()
    assert ConvGeometry(1, 2, 3, 3, 4, 3, 3).tag().startswith("N1 2->4 3x3")
