"""SIGINT/SIGTERM are never swallowed: held back during a checkpoint save, re-raised
at the next step when a callback swallowed them (one process)."""
import os
import signal

import numpy as np
import pytest

from dtnn.parallel import interrupts
from dtnn.parallel.interrupts import Interrupted

# the point of _Swallower is an exception Python reports as "ignored"
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


class _Swallower:
    """Raises SIGINT inside __del__, where Python prints and drops the exception."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)


def test_deferred_holds_the_signal_until_the_block_ends():
    # compared with the handler before, not Python's default: a suite started in the
    # background of a non-interactive shell inherits SIGINT ignored, and must keep it
    before = signal.getsignal(signal.SIGINT)
    reached_end = False
    with pytest.raises(Interrupted) as info:
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            reached_end = True
    assert reached_end and info.value.exit_status == 143
    assert signal.getsignal(signal.SIGINT) is before


def test_a_swallowed_interrupt_is_raised_again_by_check():
    with interrupts.handled():
        _Swallower()  # the KeyboardInterrupt raised in __del__ is "ignored"
        with pytest.raises(Interrupted):
            interrupts.check()


def test_sigint_during_checkpoint_save_is_raised_after_a_complete_file(tmp_path, monkeypatch):
    import dtnn.io.checkpoint as ckpt
    from dtnn.io.checkpoint import load_checkpoint, save_checkpoint
    from dtnn.layers import Dense
    from dtnn.models import Model

    model = Model([Dense(3)], (4,)).build(0)
    original = ckpt.content_digest

    def digest_then_interrupt(f):
        os.kill(os.getpid(), signal.SIGINT)   # lands in the middle of the save
        return original(f)

    monkeypatch.setattr(ckpt, "content_digest", digest_then_interrupt)
    path = tmp_path / "checkpoint.h5"
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, step=7, epoch=1)
    monkeypatch.undo()
    loaded = load_checkpoint(path)  # complete and renamed into place before the raise
    assert loaded.step == 7
    np.testing.assert_array_equal(loaded.model.flat_params, model.flat_params)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.h5"]


def test_training_ends_on_a_swallowed_sigint(tmp_path, monkeypatch, capsys):
    from dtnn.cli.main import main
    from dtnn.engine.trainer import Trainer
    from dtnn.io.checkpoint import load_checkpoint

    original = Trainer.train_step

    def step(self, xb, yb):
        out = original(self, xb, yb)
        if self.state.step == 25:
            _Swallower()
        return out

    monkeypatch.setattr(Trainer, "train_step", step)
    before = signal.getsignal(signal.SIGINT)
    status = main(["train", "--set", "data.source=synthetic", "--set",
                   "data.options={shape = [1, 8, 8], classes = 4, n_train = 320, n_test = 32}",
                   "--set", "model.options.filters=4", "--set", "model.options.hidden=8",
                   "--set", "train.epochs=50", "--set", "output.progress=false",
                   "--run-dir", str(tmp_path / "run")])
    assert status == 130
    assert "dtnn: interrupted by SIGINT" in capsys.readouterr().err
    # 5 steps per epoch: interrupted after step 25, the last checkpoint is epoch 4's
    assert load_checkpoint(str(tmp_path / "run" / "checkpoint.h5")).epoch == 4
    assert signal.getsignal(signal.SIGINT) is before
