"""Bad input is one line on stderr, exit status 2, no traceback, and found before the
data loads; the CLI starts without importing numpy, h5py, MPI or torch."""
import os
import subprocess
import sys

import pytest

from dtnn.cli.main import main

TINY = ["--set", "data.source=synthetic",
        "--set", "data.options={shape = [1, 8, 8], classes = 4, n_train = 128, n_test = 16}",
        "--set", "model.options.filters=4", "--set", "model.options.hidden=8",
        "--set", "train.epochs=1", "--set", "output.progress=false"]


@pytest.fixture
def no_data(monkeypatch):
    """Fails the test if the dataset is loaded."""
    import dtnn.engine.session as session
    monkeypatch.setattr(session, "load_data", lambda *a, **k: pytest.fail("data was loaded"))


def _one_line(capsys, *parts):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for part in parts:
        assert part in err, err
    return err


@pytest.mark.parametrize("setting,expected", [
    ("model.name=resnet9000", "unknown model 'resnet9000'"),
    ("model.conv_algorithm=fft", "unknown convolution"),
    ("optim.name=lamb", "unknown optimizer 'lamb'"),
    ("schedule.name=triangle", "unknown schedule 'triangle'"),
    ("schedule.min_lr=-1", "min_lr"),
    ("tune.force=fft", "tune.force = 'fft'"),
    ('dist.compress="topk:ratio=abc"', "ratio='abc' is not a number"),
    ('dist.compress="topk:foo=1"', "has no parameter 'foo'"),
    ("dist.stall_timeout=-1", "dist.stall_timeout"),
])
def test_bad_settings_fail_before_the_data_loads(setting, expected, no_data, tmp_path, capsys):
    assert main(["train", *TINY, "--set", setting, "--run-dir", str(tmp_path / "r")]) == 2
    _one_line(capsys, expected)
    assert not (tmp_path / "r").exists()


def test_compress_shortcut_errors_are_one_line(no_data, tmp_path, capsys):
    assert main(["train", *TINY, "--compress", "topk:ratio=abc", "--run-dir",
                 str(tmp_path / "r")]) == 2
    _one_line(capsys, "topk:ratio=abc")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("ckpt") / "run"
    assert main(["train", *TINY, "--run-dir", str(run)]) == 0
    return str(run / "checkpoint.h5")


@pytest.mark.parametrize("out,expected", [
    ("missing-dir/report.json", "does not exist"),
    (".", "is a directory"),
])
def test_eval_out_that_cannot_be_written(checkpoint, tmp_path, capsys, out, expected):
    target = tmp_path / out if out != "." else tmp_path
    assert main(["eval", checkpoint, "--out", str(target)]) == 2
    _one_line(capsys, "--out", expected)


def test_predict_top_must_be_positive(checkpoint, tmp_path, capsys):
    import numpy as np
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    for bad in ("0", "-2", "two"):
        with pytest.raises(SystemExit) as info:
            main(["predict", checkpoint, str(tmp_path / "x.npy"), "--top", bad])
        assert info.value.code == 2
        _one_line(capsys, "--top")


@pytest.mark.parametrize("command,setting", [
    ("eval", "train.epochs=3"), ("eval", "optim.lr=0.1"), ("train", "prune.keep=0.5")])
def test_set_keys_a_command_ignores_are_rejected(checkpoint, tmp_path, capsys, command,
                                                 setting):
    args = [checkpoint] if command == "eval" else [*TINY, "--run-dir", str(tmp_path / "r")]
    assert main([command, *args, "--set", setting]) == 2
    _one_line(capsys, f"dtnn {command} ignores '{setting.split('=')[0]}'")


def _cli(*args):
    code = ("import sys, runpy; sys.argv = ['dtnn'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('dtnn', run_name='__main__')\n"
            "except SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
            "heavy = sorted(m for m in ('numpy', 'h5py', 'mpi4py', 'torch', 'sklearn', "
            "'matplotlib') if m in sys.modules)\n"
            "print('HEAVY=' + ','.join(heavy)); sys.exit(code)\n")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120)
    heavy = [l for l in proc.stdout.splitlines() if l.startswith("HEAVY=")][-1][6:]
    return proc.returncode, proc.stderr, [m for m in heavy.split(",") if m]


@pytest.mark.parametrize("args,status", [
    (["--help"], 0), (["eval", "--help"], 0), (["train", "--help"], 0),
    (["eval", "missing.h5"], 2), (["predict", "missing.h5", "x.png"], 2),
    (["train", "--config", "missing.toml"], 2), (["train", "--resume", "missing.h5"], 2),
])
def test_start_up_imports_nothing_heavy(args, status):
    code, err, heavy = _cli(*args)
    assert code == status, err
    # predict's module uses numpy; nothing else may load before the arguments are checked
    allowed = {"numpy"} if args[0] == "predict" else set()
    assert set(heavy) <= allowed, heavy
    if status == 2:
        assert len(err.strip().splitlines()) == 1 and "not found" in err


def test_info_does_not_import_torch():
    code, err, heavy = _cli("info")
    assert code == 0, err
    assert "torch" not in heavy
