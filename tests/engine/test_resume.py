"""An interrupted and resumed run ends with the same weights, optimizer state and
dropout stream as an uninterrupted one (one process; N processes: tests/mpi)."""
import json

import numpy as np
import pytest

from dtnn.config import load_config
from dtnn.parallel import SerialContext
from dtnn.engine.session import train
from dtnn.io.checkpoint import load_checkpoint

# BatchNorm (buffers), dropout (RNG state), augmentation and momentum (optimizer state):
# everything that could make a resumed run drift.
OVERRIDES = ["data.source=digits", "model.name=vgg11_bn",
             "model.options={width = 0.125, hidden = 32, dropout = 0.3}",
             "data.augment_shift=1", "train.batch_size=32", "train.max_steps_per_epoch=12",
             "optim.lr=0.02", "schedule.name=step", "schedule.step_size=1",
             "schedule.warmup_epochs=0.5", "output.progress=false"]


def _config(run_dir, epochs):
    return load_config(None, OVERRIDES + [f"train.epochs={epochs}", f'output.run_dir="{run_dir}"'])


def test_resume_is_exact(tmp_path, monkeypatch):
    from dtnn.cli.main import main
    from dtnn.engine.trainer import Trainer
    # The default convolutions (bestof) pick variants by the clock while they tune: a
    # resumed run is exact when every run reads the same settled decisions (the cache
    # `dtnn tune` fills, which dtnn train also fills as it goes).
    monkeypatch.setenv("DTNN_TUNE_CACHE", str(tmp_path / "tune"))
    assert main(["tune", *[a for o in OVERRIDES for a in ("--set", o)], "--no-infer"]) == 0
    train(_config(tmp_path / "full", 3), SerialContext())
    fit = Trainer.fit

    def interrupted_after_two_epochs(self, eval_set):
        self.epochs = 2
        return fit(self, eval_set)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "fit", interrupted_after_two_epochs)
        train(_config(tmp_path / "part", 3), SerialContext())
    resumed = _config(tmp_path / "part", 3)
    train(resumed, SerialContext(), resume=str(tmp_path / "part" / "checkpoint.h5"))
    full = load_checkpoint(str(tmp_path / "full" / "checkpoint.h5"))
    part = load_checkpoint(str(tmp_path / "part" / "checkpoint.h5"))
    assert full.step == part.step and full.epoch == part.epoch == 3
    np.testing.assert_array_equal(full.model.flat_params, part.model.flat_params)
    for key, value in full.model.buffers().items():
        np.testing.assert_array_equal(value, part.model.buffers()[key])
    for key, value in full.states["optimizer"].items():
        np.testing.assert_array_equal(value, part.states["optimizer"][key])
    assert full.states["rng"] == part.states["rng"]  # dropout stream
    assert full.states["rng"]["world_size"] == 1
    tuning = json.load(open(tmp_path / "part" / "tuning.json"))
    assert all(r["source"] == "cache" for r in tuning if r["tuner"] == "conv"), tuning


@pytest.mark.parametrize("extra", [
    [], ["model.options={filters = 4, hidden = 8, dropout = 0.5}", "data.augment_shift=2",
         "data.augment_flip=true"]], ids=["plain", "dropout+augment"])
def test_resume_is_exact_on_a_tiny_model(tmp_path, monkeypatch, extra):
    from dtnn.engine.trainer import Trainer
    base = ["data.source=synthetic",
            "data.options={shape = [1, 8, 8], classes = 3, n_train = 96, n_test = 12}",
            "model.options={filters = 4, hidden = 8}", "train.batch_size=16",
            "train.epochs=4", "output.progress=false",
            # pinned: runs compared bit for bit (the default, bestof, is covered above)
            'model.conv_algorithm="im2col"', *extra]

    def cfg(name):
        return load_config(None, base + [f'output.run_dir="{tmp_path / name}"'])

    train(cfg("full"), SerialContext())
    fit = Trainer.fit
    with monkeypatch.context() as m:
        m.setattr(Trainer, "fit", lambda self, ev: (setattr(self, "epochs", 1), fit(self, ev))[1])
        train(cfg("part"), SerialContext())
    train(cfg("part"), SerialContext(), resume=str(tmp_path / "part" / "checkpoint.h5"))
    full = load_checkpoint(str(tmp_path / "full" / "checkpoint.h5"))
    part = load_checkpoint(str(tmp_path / "part" / "checkpoint.h5"))
    np.testing.assert_array_equal(full.model.flat_params, part.model.flat_params)
    assert full.states["rng"] == part.states["rng"]
