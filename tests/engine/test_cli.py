"""The dtnn command line end to end on small real data (scikit-learn digits)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dtnn.cli.main import main

DIGITS = ["--set", "data.source=digits", "--set", "model.name=simplecnn",
          "--set", "model.options.filters=8", "--set", "model.options.hidden=32",
          "--set", "train.epochs=2", "--set", "train.batch_size=32",
          "--set", "optim.lr=0.05", "--set", "output.progress=false"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    assert main(["train", *DIGITS, "--run-dir", str(run_dir)]) == 0
    return run_dir


def test_train_writes_the_run_directory(trained_run):
    for name in ("config.toml", "model.txt", "metrics.jsonl", "checkpoint.h5", "report.json",
                 "confusion.txt", "curves.png"):
        assert (trained_run / name).exists(), name
    lines = [json.loads(l) for l in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    report = json.loads((trained_run / "report.json").read_text())
    assert report["accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert np.array(report["confusion"]).sum() == report["num_samples"]


def test_eval_and_predict(trained_run, tmp_path, capsys):
    ckpt = str(trained_run / "checkpoint.h5")
    out = tmp_path / "eval.json"
    assert main(["eval", ckpt, "--out", str(out)]) == 0
    saved = json.loads((trained_run / "report.json").read_text())
    assert json.loads(out.read_text())["accuracy"] == pytest.approx(saved["accuracy"])
    from sklearn.datasets import load_digits
    digits = load_digits()
    np.save(tmp_path / "x.npy", (digits.images[:5] / 16.0).astype(np.float32))
    capsys.readouterr()
    assert main(["predict", ckpt, str(tmp_path / "x.npy"), "--json"]) == 0
    rows = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert len(rows) == 5 and all(r["prediction"] in [str(i) for i in range(10)] for r in rows)


def test_resume_continues(trained_run, tmp_path):
    ckpt = str(trained_run / "checkpoint.h5")
    assert main(["train", "--resume", ckpt, "--set", "train.epochs=3",
                 "--run-dir", str(tmp_path / "more")]) == 0
    lines = (tmp_path / "more" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in lines] == [3]


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "dtnn", *args], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONWARNINGS="ignore"))


@pytest.mark.parametrize("args, words", [
    (["train", "--set", "train.epochs=zero"], "must be an integer"),
    (["train", "--set", "model.name=resnet999"], "unknown model 'resnet999'"),
    (["train", "--set", "data.source=idx", "--set", "data.path=/nonexistent/dir"], "/nonexistent/dir"),
    (["train", "--bogus-option"], "unrecognized arguments"),
    (["eval", "/nonexistent/checkpoint.h5"], "/nonexistent/checkpoint.h5"),
])
def test_user_errors_are_one_line_with_status_2(args, words):
    proc = _run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert words in lines[0] and "Traceback" not in proc.stderr


def test_corrupt_checkpoint_is_a_user_error(tmp_path):
    bad = tmp_path / "checkpoint.h5"
    bad.write_bytes(b"not an hdf5 file at all")
    proc = _run_cli("predict", str(bad), "whatever.npy")
    assert proc.returncode == 2 and "checkpoint.h5" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_info_runs():
    proc = _run_cli("info", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert set(info["kernels"]) >= {"im2col", "col2im", "maxpool_forward", "maxpool_backward"}
    assert info["versions"]["numpy"] != "not installed"
    assert info["threads_per_process"] >= 1
