"""Run directories and resume: nothing lost, nothing mixed, nothing silent.

Every check that refuses a run must leave the directory exactly as it was."""
import json
import os
import socket

import numpy as np
import pytest

from dtnn.cli.main import main
from dtnn.io.checkpoint import load_checkpoint

TINY = ["--set", "data.source=synthetic",
        "--set", "data.options={shape = [1, 8, 8], classes = 4, n_train = 320, n_test = 32}",
        "--set", "model.options.filters=4", "--set", "model.options.hidden=8",
        "--set", "output.progress=false"]


def _train(run_dir, *extra, epochs=2):
    return main(["train", *TINY, "--set", f"train.epochs={epochs}", "--run-dir", str(run_dir),
                 *extra])


def _snapshot(directory):
    return {p: open(os.path.join(directory, p), "rb").read() for p in sorted(os.listdir(directory))}


def _epochs(run_dir):
    return [json.loads(l)["epoch"] for l in open(os.path.join(run_dir, "metrics.jsonl"))]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run = tmp_path_factory.mktemp("finished") / "run"
    assert _train(run) == 0
    return run


def test_non_empty_run_dir_is_refused_and_left_untouched(finished, capsys):
    before = _snapshot(finished)
    assert _train(finished, "--set", "model.options.hidden=16") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not empty" in err and "--overwrite" in err
    assert _snapshot(finished) == before


def test_overwrite_starts_afresh(finished, tmp_path, capsys):
    run = tmp_path / "run"
    os.makedirs(run)
    for name in ("metrics.jsonl", "notes.txt"):
        (run / name).write_text('{"epoch": 7, "step": 99}\n')
    assert _train(run, "--overwrite", epochs=1) == 0
    assert _epochs(run) == [1]
    assert (run / "notes.txt").exists()     # not ours: left alone
    assert _train(run, "--overwrite", "--resume", str(run / "checkpoint.h5")) == 2
    assert "give one of them" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["file", "under-file", "unwritable"])
def test_unusable_run_dir_is_one_line_before_any_data(kind, tmp_path, capsys, monkeypatch):
    import dtnn.engine.session as session
    monkeypatch.setattr(session, "load_data", lambda *a, **k: pytest.fail("data loaded"))
    target = tmp_path / "target"
    if kind in ("file", "under-file"):
        target.write_text("x")
        run = target if kind == "file" else target / "run"
    else:
        os.makedirs(target)
        run = target / "run"
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **k: False if str(p) == str(target)
                            else real(p, mode, **k))
    assert _train(run) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"run directory {run}" in err
    assert {"file": "not a directory", "under-file": "is not a directory",
            "unwritable": "not writable"}[kind] in err


def test_crash_in_a_save_then_resume_keeps_metrics_consistent(tmp_path, monkeypatch, capsys):
    import dtnn.engine.session as session
    run = tmp_path / "run"
    real_save = session.save_checkpoint

    def crashing_save(path, model, **kw):
        if kw["epoch"] == 3:
            raise OSError("disk gone")   # like a kill in the middle of the save
        return real_save(path, model, **kw)

    monkeypatch.setattr(session, "save_checkpoint", crashing_save)
    assert _train(run, epochs=5) == 2
    _, err = capsys.readouterr()
    assert err.strip().splitlines()[-1].endswith("cannot write checkpoint.h5 (disk gone)")
    monkeypatch.undo()
    assert _epochs(run) == [1, 2]           # no line for the epoch without a checkpoint
    with open(run / "metrics.jsonl", "a") as fh:  # a record that ran ahead (older dtnn)
        fh.write(json.dumps({"epoch": 3, "step": 15}) + "\n")
    assert main(["train", "--resume", str(run / "checkpoint.h5"),
                 "--set", "train.epochs=5"]) == 0
    assert _epochs(run) == [1, 2, 3, 4, 5]


def test_stale_temp_files_of_dead_writers_are_removed(finished, tmp_path):
    run = tmp_path / "run"
    assert _train(run, epochs=1) == 0
    host = socket.gethostname().replace("-", "_")
    dead = run / f".checkpoint.h5.tmp-{host}-999999999"
    legacy = run / ".checkpoint.h5.tmp-999999998"
    live = run / f".checkpoint.h5.tmp-{host}-{os.getppid()}"  # alive, not us
    other = run / ".checkpoint.h5.tmp-some_other_host-12"
    for p in (dead, legacy, live, other):
        p.write_bytes(b"\0" * 1000)
    assert main(["train", "--resume", str(run / "checkpoint.h5"),
                 "--set", "train.epochs=2"]) == 0
    assert not dead.exists() and not legacy.exists()
    assert live.exists() and other.exists()


def test_resume_with_another_model_is_refused_before_anything(finished, tmp_path, capsys):
    ckpt = str(finished / "checkpoint.h5")
    other = tmp_path / "other.toml"
    other.write_text('[model]\nname = "lenet"\n')
    run = tmp_path / "new"
    assert main(["train", "--resume", ckpt, "--config", str(other), "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.name" in err and "lenet" in err
    assert not run.exists()
    assert main(["train", "--resume", ckpt, "--set", "model.options.hidden=32",
                 "--run-dir", str(run)]) == 2
    assert "model.options" in capsys.readouterr().err and not run.exists()


def test_resume_on_data_of_another_shape_is_one_line_and_writes_nothing(finished, tmp_path,
                                                                         capsys):
    run = tmp_path / "new"
    assert main(["train", "--resume", str(finished / "checkpoint.h5"), "--run-dir", str(run),
                 "--set", "train.epochs=3", "--set",
                 "data.options={shape = [1, 10, 10], classes = 4, n_train = 320}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "(1, 8, 8)" in err and "(1, 10, 10)" in err
    assert not run.exists()


def test_resume_of_a_finished_run_without_more_epochs_is_refused(finished, capsys):
    assert main(["train", "--resume", str(finished / "checkpoint.h5")]) == 2
    assert "nothing to train" in capsys.readouterr().err


def _lrs(run):
    return [r["lr"] for r in map(json.loads, open(run / "metrics.jsonl"))]


def test_extending_a_cosine_run_stretches_it_without_jumping_up(tmp_path, monkeypatch):
    from dtnn.engine.trainer import Trainer
    run, full = tmp_path / "run", tmp_path / "full"
    assert _train(full, "--set", "train.max_steps_per_epoch=4", epochs=6) == 0
    original = Trainer.train_step

    def stop_in_epoch_3(self, xb, yb):
        if self.state.step == 8:
            raise KeyboardInterrupt
        return original(self, xb, yb)

    monkeypatch.setattr(Trainer, "train_step", stop_in_epoch_3)
    assert _train(run, "--set", "train.max_steps_per_epoch=4", epochs=6) == 130
    monkeypatch.undo()
    ckpt = str(run / "checkpoint.h5")
    # same epochs: continues the original schedule exactly
    same = tmp_path / "same"
    assert main(["train", "--resume", ckpt, "--run-dir", str(same)]) == 0
    assert _lrs(same) == pytest.approx(_lrs(full)[2:], rel=1e-12)
    # extended to 12 epochs: from the current lr down to the same end, never up
    assert main(["train", "--resume", ckpt, "--set", "train.epochs=12",
                 "--run-dir", str(tmp_path / "longer")]) == 0
    lrs = _lrs(run)[:2] + _lrs(tmp_path / "longer")
    assert len(lrs) == 12 and all(b <= a for a, b in zip(lrs, lrs[1:]))
    assert lrs[2] > _lrs(full)[2] and lrs[-1] <= _lrs(full)[-1]   # same end, later
    resumed = load_checkpoint(str(tmp_path / "longer" / "checkpoint.h5"))
    assert resumed.meta["schedule"]["segments"][0][0] == 8


def test_stretched_schedule_arithmetic():
    from dtnn.engine.resume import StretchedSchedule, plan_schedule
    from dtnn.optim.schedules import build_schedule

    def build(epochs, spe):
        return build_schedule("cosine", 0.1, spe, epochs)

    plain, plan = plan_schedule(build, 10, 10)
    assert plan == {"epochs": 10, "steps_per_epoch": 10, "segments": [], "end_step": 100}
    same, again = plan_schedule(build, 10, 10, plan, step=40, epoch=4)
    assert not isinstance(same, StretchedSchedule) and again["end_step"] == 100
    longer, plan2 = plan_schedule(build, 20, 10, plan, step=40, epoch=4)
    assert longer.lr_at(40) == pytest.approx(plain.lr_at(40))
    assert longer.lr_at(200) == pytest.approx(plain.lr_at(100))
    # remaining 60 steps of the schedule over 160 steps: step 40 + 160 * k reads 40 + 60 * k
    assert longer.lr_at(120) == pytest.approx(plain.lr_at(70))
    # stretched twice (resumed again at step 120, now to 30 epochs)
    twice, _ = plan_schedule(build, 30, 10, plan2, step=120, epoch=12)
    assert twice.lr_at(120) == pytest.approx(longer.lr_at(120))
    assert twice.lr_at(300) == pytest.approx(plain.lr_at(100))
    lrs = [twice.lr_at(s) for s in range(0, 320)]
    assert all(b <= a + 1e-15 for a, b in zip(lrs, lrs[1:]))
