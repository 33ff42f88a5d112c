"""Checkpoint round trips, atomic writes and clear errors for damaged files."""
import hashlib
import os

import h5py
import numpy as np
import pytest

import dtnn
from dtnn.errors import DataError
from dtnn.io import (Checkpoint, load_checkpoint, read_config, read_meta, restore_into,
                     save_checkpoint)
from dtnn.io import checkpoint as ckpt_mod
from dtnn.io import atomic as atomic_mod
from dtnn.layers.base import LAYERS, Layer
from dtnn.models.model import Model
from dtnn.optim import build_optimizer


# --- test-only layers (independent of dtnn.layers) ----------------------------------------
if "_test_affine" not in LAYERS:
    @LAYERS.register("_test_affine")
    class _Affine(Layer):
        """y = x W + b."""
        decay_params = ("W",)

        def build(self, input_shape, rng):
            super().build(input_shape, rng)
            units = self.config["units"]
            self.add_param("W", rng.standard_normal((input_shape[0], units)) / np.sqrt(input_shape[0]))
            self.add_param("b", rng.standard_normal(units) * 0.1)
            self.output_shape = (units,)
            return self.output_shape

        def forward(self, x, training):
            self._x = x
            return x @ self.params["W"] + self.params["b"]

        def backward(self, dy):
            np.matmul(self._x.T, dy, out=self.grads["W"])
            self.set_grad("b", dy.sum(axis=0))
            return dy @ self.params["W"].T if self.needs_input_grad else None

    @LAYERS.register("_test_stats")
    class _Stats(Layer):
        """Subtracts a running mean (a buffer, like BatchNorm's) in inference mode."""

        def build(self, input_shape, rng):
            shape = super().build(input_shape, rng)
            self.buffers["running_mean"] = np.zeros(input_shape, np.float32)
            self.buffers["count"] = np.zeros((), np.int64)
            return shape

        def forward(self, x, training):
            if training:
                self.buffers["running_mean"] *= 0.9
                self.buffers["running_mean"] += 0.1 * x.mean(axis=0)
                self.buffers["count"] += 1
                return x - x.mean(axis=0)
            return x - self.buffers["running_mean"]

        def backward(self, dy):
            return dy

    @LAYERS.register("_test_noise")
    class _Noise(Layer):
        """Adds noise from the layer RNG while training (like dropout's mask)."""
        uses_rng = True

        def forward(self, x, training):
            if not training:
                return x
            return x + self.rng.standard_normal(x.shape).astype(np.float32)

        def backward(self, dy):
            return dy


def make_model(seed=0, units=5):
    layers = [LAYERS.get("_test_affine")(units=units), LAYERS.get("_test_stats")(),
              LAYERS.get("_test_noise")(), LAYERS.get("_test_affine")(units=3)]
    return Model(layers, (4,), name="tiny", arch={"name": "tiny", "options": {"u": units}}).build(seed)


def train(model, opt, steps, seed):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = rng.standard_normal((8, 4)).astype(np.float32)
        y = model.forward(x, training=True)
        model.backward((y / len(x)).astype(np.float32))
        opt.step()


def file_digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def trained(tmp_path):
    model = make_model(seed=1)
    opt = build_optimizer("sgd", model, lr=0.05, momentum=0.9, weight_decay=1e-3)
    train(model, opt, 3, seed=2)
    return model, opt


def save(path, model, opt, step=3, epoch=1, **kw):
    states = {"optimizer": opt.state_dict(),
              "data": {"perm": np.arange(10, dtype=np.int64)[::-1].copy(), "cursor": 4,
                       "seed": 2 ** 70},
              "compressor": {"residual": {"0": np.full(3, 0.5, np.float32)}, "kind": "topk"}}
    meta = {"config": {"lr": 0.05, "batch": [8, 8]}, "dtnn_version": dtnn.__version__,
            "norm": {"mean": np.array([0.5, 0.25], np.float32)}}
    return save_checkpoint(path, model, step=step, epoch=epoch, states=kw.get("states", states),
                           meta=kw.get("meta", meta))


# --- round trip ---------------------------------------------------------------------------
def test_round_trip_rebuilds_model_from_file_alone(tmp_path, trained):
    model, opt = trained
    path = str(tmp_path / "ck.h5")
    assert save(path, model, opt) == path
    ck = load_checkpoint(path, seed=123)
    assert isinstance(ck, Checkpoint) and ck.path == path
    assert (ck.step, ck.epoch) == (3, 1)
    assert ck.model is not model and ck.model.get_config() == model.get_config()
    np.testing.assert_array_equal(ck.model.flat_params, model.flat_params)
    for k, v in model.buffers().items():
        b = ck.model.buffers()[k]
        assert b.dtype == v.dtype and b.shape == v.shape
        np.testing.assert_array_equal(b, v)
    assert int(model.buffers()["1/count"]) == 3

    x = np.random.default_rng(9).standard_normal((6, 4)).astype(np.float32)
    np.testing.assert_array_equal(ck.model.forward(x), model.forward(x))
    # RNG states restored too: training-mode outputs (noise layer) are identical
    np.testing.assert_array_equal(ck.model.forward(x, training=True), model.forward(x, training=True))

    states = ck.states
    assert set(states) == {"optimizer", "data", "compressor"}
    assert states["data"]["cursor"] == 4 and states["data"]["seed"] == 2 ** 70
    np.testing.assert_array_equal(states["data"]["perm"], np.arange(10)[::-1])
    assert states["compressor"]["kind"] == "topk"
    assert states["compressor"]["residual"]["0"].dtype == np.float32
    assert ck.meta["config"] == {"lr": 0.05, "batch": [8, 8]}
    assert ck.meta["norm"]["mean"] == [0.5, 0.25]  # meta is JSON: arrays become lists
    assert read_meta(path) == ck.meta
    assert read_config(path) == model.get_config()


def test_optimizer_resume_from_checkpoint_is_bit_exact(tmp_path):
    ref_model = make_model(seed=1)
    ref_opt = build_optimizer("adamw", ref_model, lr=0.01, weight_decay=0.1)
    train(ref_model, ref_opt, 3, seed=2)
    path = tmp_path / "ck.h5"
    save_checkpoint(path, ref_model, step=3, epoch=0, states={"optimizer": ref_opt.state_dict()})
    train(ref_model, ref_opt, 4, seed=3)

    ck = load_checkpoint(path)
    opt = build_optimizer("adamw", ck.model, lr=0.01, weight_decay=0.1)
    opt.load_state_dict(ck.states["optimizer"])
    train(ck.model, opt, 4, seed=3)
    np.testing.assert_array_equal(ck.model.flat_params, ref_model.flat_params)


def test_file_is_readable_by_plain_hdf5_tools(tmp_path, trained):
    model, opt = trained
    path = tmp_path / "ck.h5"
    save(path, model, opt, step=17, epoch=2)
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "dtnn-checkpoint"
        assert int(f.attrs["step"]) == 17 and int(f.attrs["epoch"]) == 2
        np.testing.assert_array_equal(f["model/params/0/W"][()], model.layers[0].params["W"])
        np.testing.assert_array_equal(f["model/params/3/b"][()], model.layers[3].params["b"])
        assert "1" not in f["model/params"] and "2" not in f["model/params"]
        np.testing.assert_array_equal(f["model/buffers/1/running_mean"][()],
                                      model.layers[1].buffers["running_mean"])
        assert isinstance(f["states/optimizer/momentum_buffer"], h5py.Dataset)


def test_restore_into_existing_model(tmp_path, trained):
    model, opt = trained
    path = tmp_path / "ck.h5"
    save(path, model, opt)
    other = make_model(seed=7)
    other.name = "renamed"  # the name is not part of the architecture check
    assert not np.array_equal(other.flat_params, model.flat_params)
    flat = other.flat_params
    ck = restore_into(path, other)
    assert ck.model is other and ck.step == 3
    assert other.flat_params is flat  # loaded in place: optimizer views stay valid
    np.testing.assert_array_equal(other.flat_params, model.flat_params)
    np.testing.assert_array_equal(other.buffers()["1/running_mean"],
                                  model.buffers()["1/running_mean"])
    assert other.rng_states() == model.rng_states()


def test_restore_into_can_keep_own_rng(tmp_path, trained):
    model, opt = trained
    path = tmp_path / "ck.h5"
    save(path, model, opt)
    other = make_model(seed=7)
    other.reseed_rngs(seed=1, stream=5)
    mine = other.rng_states()
    restore_into(path, other, rng=False)
    assert other.rng_states() == mine != model.rng_states()


def test_restore_into_rejects_other_architecture(tmp_path, trained):
    model, opt = trained
    path = tmp_path / "ck.h5"
    save(path, model, opt)
    wrong = make_model(seed=0, units=6)
    before = wrong.flat_params.copy()
    with pytest.raises(DataError, match=r"different model: layer 0 is _test_affine") as e:
        restore_into(path, wrong)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    np.testing.assert_array_equal(wrong.flat_params, before)


# --- atomicity ------------------------------------------------------------------------------
def _boom(*args, **kwargs):
    raise RuntimeError("simulated crash")


@pytest.mark.parametrize("target", ["write_tree", "fsync", "replace", "interrupt"])
def test_crash_during_write_keeps_old_checkpoint(tmp_path, trained, monkeypatch, target):
    model, opt = trained
    path = tmp_path / "ck.h5"
    save(path, model, opt, step=3)
    digest = file_digest(path)

    train(model, opt, 1, seed=5)
    if target == "write_tree":
        monkeypatch.setattr(ckpt_mod, "write_tree", _boom)
    elif target == "fsync":
        monkeypatch.setattr(atomic_mod, "fsync_path", _boom)
    elif target == "replace":
        monkeypatch.setattr(atomic_mod.os, "replace", _boom)
    else:
        def interrupt(*a, **k):
            raise KeyboardInterrupt
        monkeypatch.setattr(ckpt_mod, "write_json", interrupt)
    expected = KeyboardInterrupt if target == "interrupt" else RuntimeError
    with pytest.raises(expected):
        save(path, model, opt, step=4)
    monkeypatch.undo()

    assert sorted(os.listdir(tmp_path)) == ["ck.h5"]  # no temp file left behind
    assert file_digest(path) == digest
    assert load_checkpoint(path).step == 3


def test_failed_first_save_leaves_nothing(tmp_path, trained, monkeypatch):
    model, opt = trained
    monkeypatch.setattr(ckpt_mod, "write_tree", _boom)
    with pytest.raises(RuntimeError):
        save(tmp_path / "sub" / "ck.h5", model, opt)
    assert os.listdir(tmp_path / "sub") == []


def test_overwrite_replaces_checkpoint(tmp_path, trained):
    model, opt = trained
    path = tmp_path / "ck.h5"
    save(path, model, opt, step=3)
    train(model, opt, 1, seed=5)
    save(path, model, opt, step=4)
    ck = load_checkpoint(path)
    assert ck.step == 4
    np.testing.assert_array_equal(ck.model.flat_params, model.flat_params)
    assert sorted(os.listdir(tmp_path)) == ["ck.h5"]


def test_bad_state_value_fails_cleanly(tmp_path, trained):
    model, opt = trained
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "ck.h5", model, step=0, epoch=0, states={"x": [1, 2]})
    assert os.listdir(tmp_path) == []


# --- damaged files ----------------------------------------------------------------------------
def expect_data_error(path, match, loader=load_checkpoint):
    with pytest.raises(DataError, match=match) as e:
        loader(path)
    message = str(e.value)
    assert str(path) in message and "\n" not in message
    return message


def test_missing_file(tmp_path):
    expect_data_error(tmp_path / "nope.h5", "file not found")


def test_directory(tmp_path):
    expect_data_error(tmp_path, "directory")


@pytest.mark.parametrize("content", [b"", b"hello, this is not hdf5\n" * 10, b"\x00" * 4096])
def test_not_hdf5(tmp_path, content):
    path = tmp_path / "ck.h5"
    path.write_bytes(content)
    expect_data_error(path, "not an HDF5 file")


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_truncated(tmp_path, trained, fraction):
    model, opt = trained
    path = tmp_path / "ck.h5"
    save(path, model, opt)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    expect_data_error(path, "truncated|corrupt|damaged|not an HDF5")


def test_flipped_bits_in_weights_are_detected(tmp_path, trained):
    model, opt = trained
    path = tmp_path / "ck.h5"
    save(path, model, opt)
    data = bytearray(path.read_bytes())
    weights = model.layers[0].params["W"].tobytes()
    at = bytes(data).find(weights)
    assert at > 0
    data[at + 5] ^= 0x10
    path.write_bytes(bytes(data))
    expect_data_error(path, "content digest mismatch")


def test_hdf5_but_not_a_checkpoint(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    expect_data_error(path, "not a dtnn checkpoint")


def _edit(path, fn, redigest=True):
    """Change a checkpoint with h5py; by default re-stamp the content digest so the
    file is consistent and the loader's structural checks are what is tested."""
    with h5py.File(path, "a") as f:
        fn(f)
        if redigest:
            f.attrs[ckpt_mod.DIGEST_ATTR] = ckpt_mod.content_digest(f)


@pytest.mark.parametrize("edit,match", [
    (lambda f: f.__delitem__("model/params/3"), r"missing group '/model/params/3'"),
    (lambda f: f.__delitem__("model/params/0/b"), r"missing parameter '/model/params/0/b'"),
    (lambda f: f.__delitem__("model/buffers"), r"missing group '/model/buffers'"),
    (lambda f: f.__delitem__("model"), r"missing group '/model'"),
    (lambda f: f.attrs.__delitem__("step"), r"'step'"),
    (lambda f: f["model"].attrs.__setitem__("config", "{not json"), r"not valid JSON"),
    (lambda f: f["model"].attrs.__setitem__(
        "config", '{"input_shape": [4], "layers": [{"type": "_no_such_layer", "config": {}}]}'),
     r"cannot rebuild the model.*_no_such_layer"),
    (lambda f: (f.__delitem__("model/params/0/W"),
                f.create_dataset("model/params/0/W", data=np.zeros((4, 2), np.float32))),
     r"'/model/params/0/W' has shape \(4, 2\) but the model expects \(4, 5\)"),
    (lambda f: f.create_dataset("model/params/0/extra", data=np.zeros(2)), r"not a parameter"),
    (lambda f: f.create_dataset("model/params/2/W", data=np.zeros(2)), r"no matching layer"),
    (lambda f: f.attrs.__setitem__("format_version", 99), r"newer"),
])
def test_inconsistent_contents(tmp_path, trained, edit, match):
    model, opt = trained
    path = tmp_path / "ck.h5"
    save(path, model, opt)
    _edit(path, edit)
    expect_data_error(path, match)


@pytest.mark.parametrize("edit", [
    lambda f: f["model/params/0/W"].__setitem__((0, 0), 123.0),
    lambda f: f.attrs.__setitem__("meta", '{"config": {"lr": 0.5}}'),
    lambda f: f.move("states/data", "states/date"),
    lambda f: f.attrs.__setitem__("step", 4),
])
def test_edits_without_new_digest_are_detected(tmp_path, trained, edit):
    model, opt = trained
    path = tmp_path / "ck.h5"
    save(path, model, opt)
    _edit(path, edit, redigest=False)
    expect_data_error(path, "content digest mismatch")
    expect_data_error(path, "content digest mismatch",
                      loader=lambda p: restore_into(p, make_model(seed=1)))


def test_missing_digest(tmp_path, trained):
    model, opt = trained
    path = tmp_path / "ck.h5"
    save(path, model, opt)
    _edit(path, lambda f: f.attrs.__delitem__(ckpt_mod.DIGEST_ATTR), redigest=False)
    expect_data_error(path, "missing content digest")


def test_random_bit_flips_never_load_silently(tmp_path, trained):
    """Flip single bits all over the file: each load either fails with DataError or
    returns exactly the saved contents."""
    model, opt = trained
    path = tmp_path / "ck.h5"
    save(path, model, opt)
    ref = load_checkpoint(path)
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    failures = 0
    for _ in range(150):
        damaged = bytearray(data)
        i = int(rng.integers(len(damaged)))
        damaged[i] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(damaged))
        try:
            ck = load_checkpoint(path)
        except DataError as e:
            assert "\n" not in str(e) and str(path) in str(e)
            failures += 1
            continue
        np.testing.assert_array_equal(ck.model.flat_params, ref.model.flat_params)
        assert (ck.step, ck.epoch, ck.meta) == (ref.step, ref.epoch, ref.meta)
        assert ck.model.get_config() == ref.model.get_config()
        assert ck.model.rng_states() == ref.model.rng_states()
        assert set(ck.states) == set(ref.states)
        np.testing.assert_array_equal(ck.states["optimizer"]["momentum_buffer"],
                                      ref.states["optimizer"]["momentum_buffer"])
        assert ck.states["data"]["seed"] == ref.states["data"]["seed"]
    assert failures > 0


def test_restore_into_reports_damage_without_touching_model(tmp_path, trained):
    model, opt = trained
    path = tmp_path / "ck.h5"
    save(path, model, opt)
    # layer 0's W is read before its missing b: nothing may be copied before the check
    _edit(path, lambda f: f.__delitem__("model/params/0/b"))
    target = make_model(seed=7)
    before = target.flat_params.copy()
    expect_data_error(path, "missing parameter", loader=lambda p: restore_into(p, target))
    np.testing.assert_array_equal(target.flat_params, before)


def test_real_layers_round_trip(tmp_path):
    """Integration with dtnn.layers (conv, batchnorm, dropout, dense): a rebuilt model
    gives identical inference and training-mode (dropout) outputs."""
    import dtnn.layers as L

    model = Model([L.Conv2D(4, 3, padding=1), L.BatchNorm(), L.ReLU(), L.Dropout(0.3),
                   L.Flatten(), L.Dense(5)], (2, 6, 6)).build(seed=3)
    opt = build_optimizer("sgd", model, lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = rng.standard_normal((4, 2, 6, 6)).astype(np.float32)
        y = model.forward(x, training=True)
        model.backward(np.ones_like(y) / y.size)
        opt.step()
    path = tmp_path / "real.h5"
    save_checkpoint(path, model, step=2, epoch=0, states={"optimizer": opt.state_dict()})
    ck = load_checkpoint(path)
    assert any(k.endswith(("mean", "var")) for k in ck.model.buffers())
    x = rng.standard_normal((3, 2, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(ck.model.forward(x), model.forward(x))
    np.testing.assert_array_equal(ck.model.forward(x, training=True),
                                  model.forward(x, training=True))
