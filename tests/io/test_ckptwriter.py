"""dtnn.io.ckptwriter: a checkpoint written from a snapshot on a background thread is
the same file as one written from the model at that moment, whatever the model does
afterwards; writes run one at a time in order; a failed write is raised by the next
submit / wait.  And `dtnn train` writes its checkpoints that way by default, with the
same result as output.checkpoint_background=false."""
import threading
import time

import numpy as np
import pytest

from dtnn.cli.main import main
from dtnn.io.checkpoint import load_checkpoint, save_checkpoint
from dtnn.io.ckptwriter import BackgroundWriter, ModelSnapshot, copy_tree
from dtnn.models import build_model

DIGITS = ["--set", "data.source=digits", "--set", "model.name=simplecnn",
          "--set", "model.options.filters=8", "--set", "model.options.hidden=32",
          "--set", "train.batch_size=32", "--set", "optim.lr=0.05",
          "--set", "output.progress=false", "--set", "train.epochs=2",
          # pinned: the runs are compared bit for bit, bestof's tuning follows the clock
          "--set", "model.conv_algorithm=im2col"]


def test_a_snapshot_saves_the_model_as_it_was(tmp_path):
    model = build_model("simplecnn", (1, 8, 8), 3, seed=0, filters=2, hidden=4)
    states = {"optimizer": {"m": np.arange(5, dtype=np.float32)}, "note": {"s": "x"}}
    save_checkpoint(str(tmp_path / "direct.h5"), model, step=3, epoch=1, states=states)
    snap, frozen = ModelSnapshot(model), copy_tree(states)
    for layer in model.layers:          # training goes on: everything changes in place
        for v in layer.params.values():
            v += 1.0
    states["optimizer"]["m"][:] = -1
    save_checkpoint(str(tmp_path / "snap.h5"), snap, step=3, epoch=1, states=frozen)
    a, b = load_checkpoint(str(tmp_path / "direct.h5")), load_checkpoint(str(tmp_path / "snap.h5"))
    assert np.array_equal(a.model.flat_params, b.model.flat_params)
    assert not np.array_equal(b.model.flat_params, model.flat_params)
    assert np.array_equal(b.states["optimizer"]["m"], np.arange(5, dtype=np.float32))
    assert a.model.get_config() == b.model.get_config()


def test_writes_run_one_at_a_time_in_order_on_the_writer_thread():
    w = BackgroundWriter()
    seen, threads = [], set()

    def job(i):
        def run():
            threads.add(threading.current_thread().name)
            time.sleep(0.01 * (3 - i))   # an earlier job that takes longer still ends first
            seen.append(i)
        return run

    for i in range(3):
        w.submit(job(i))
    w.wait()
    assert seen == [0, 1, 2] and threads == {"dtnn-checkpoint"}
    w.wait()   # nothing in flight: returns


def test_a_failed_write_is_raised_by_the_next_submit_or_wait():
    w = BackgroundWriter()

    def boom():
        raise OSError("disk full")

    w.submit(boom)
    with pytest.raises(OSError, match="disk full"):
        w.submit(lambda: None)
    w.submit(boom)
    with pytest.raises(OSError, match="disk full"):
        w.wait()
    w.submit(boom)
    w.wait(raise_error=False)   # already failing: the write's error is dropped
    w.wait()


def test_training_writes_checkpoints_in_the_background_with_the_same_result(tmp_path,
                                                                           monkeypatch):
    import dtnn.engine.session as session
    real, threads = session.save_checkpoint, []

    def recording(path, model, **kw):
        threads.append(threading.current_thread().name)
        return real(path, model, **kw)

    monkeypatch.setattr(session, "save_checkpoint", recording)
    assert main(["train", *DIGITS, "--run-dir", str(tmp_path / "bg")]) == 0
    assert threads == ["dtnn-checkpoint"] * 2
    threads.clear()
    assert main(["train", *DIGITS, "--set", "output.checkpoint_background=false",
                 "--run-dir", str(tmp_path / "fg")]) == 0
    assert threads == ["MainThread"] * 2
    a = load_checkpoint(str(tmp_path / "bg" / "checkpoint.h5"))
    b = load_checkpoint(str(tmp_path / "fg" / "checkpoint.h5"))
    assert a.step == b.step and np.array_equal(a.model.flat_params, b.model.flat_params)
    for key, value in a.states["optimizer"].items():
        assert np.array_equal(value, b.states["optimizer"][key]), key
    import json
    recs = [[json.loads(l) for l in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
            for d in ("bg", "fg")]
    assert [(r["epoch"], r["train_loss"]) for r in recs[0]] == \
        [(r["epoch"], r["train_loss"]) for r in recs[1]]
