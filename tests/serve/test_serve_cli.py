"""``dtnn serve`` start-up errors, ``dtnn predict`` on images/npz/--segment, class names."""
import json
import socket
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

from dtnn.cli.main import main

from .conftest import side_by_side


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "dtnn", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_serve_bad_checkpoint_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "model.h5"
    bad.write_bytes(b"not hdf5")
    for path in (str(bad), str(tmp_path / "missing.h5")):
        proc = _cli("serve", path, "--port", "0")
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_serve_busy_port_and_bad_options(digits_checkpoint):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = _cli("serve", digits_checkpoint, "--port", str(port))
    assert proc.returncode == 2 and "cannot listen on 127.0.0.1" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = _cli("serve", digits_checkpoint, "--port", "70000")
    assert proc.returncode == 2 and "--port" in proc.stderr


def test_serve_answers_health_and_warns_on_all_interfaces(digits_checkpoint):
    proc = subprocess.Popen([sys.executable, "-m", "dtnn", "serve", digits_checkpoint,
                             "--host", "0.0.0.0", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port = int(line.rsplit(":", 1)[1].strip(" /\n"))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as res:
            assert json.load(res)["status"] == "ok"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "reachable from other machines" in err


def test_predict_segment_prints_the_transcription(digits_checkpoint, tmp_path, capsys):
    (tmp_path / "line.png").write_bytes(side_by_side("1", "7"))
    assert main(["predict", digits_checkpoint, str(tmp_path / "line.png"), "--segment",
                 "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert len(row["characters"]) == 2 and len(row["text"]) == 2
    assert row["latex"] == f"${row['text']}$"
    assert main(["predict", digits_checkpoint, str(tmp_path / "line.png"), "--segment"]) == 0
    assert "characters: " + row["text"] in capsys.readouterr().out


def test_predict_reads_npz_x_test_x_or_key(digits_checkpoint, tmp_path, capsys):
    from sklearn.datasets import load_digits
    d = load_digits()
    imgs = (d.images[:6] / 16.0).astype(np.float32)
    np.savez(tmp_path / "test.npz", x_train=imgs[:2], x_test=imgs[:4])
    np.savez(tmp_path / "plain.npz", x=imgs[:3], other=imgs[:5])
    for name, args, rows in (("test.npz", [], 4), ("plain.npz", [], 3),
                             ("plain.npz", ["--key", "other"], 5),
                             ("test.npz", ["--key", "x_train"], 2)):
        capsys.readouterr()
        assert main(["predict", digits_checkpoint, str(tmp_path / name), *args, "--json"]) == 0
        out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(out) == rows and out[0]["input"] == f"{tmp_path / name}[0]"
    assert main(["predict", digits_checkpoint, str(tmp_path / "plain.npz"), "--key",
                 "nope"]) == 2
    assert "no array named 'nope'" in capsys.readouterr().err
    np.savez(tmp_path / "none.npz", y=np.zeros(3))
    assert main(["predict", digits_checkpoint, str(tmp_path / "none.npz")]) == 2
    assert "--key" in capsys.readouterr().err


@pytest.fixture(scope="module")
def named_run(tmp_path_factory):
    """A tiny model trained on an npz dataset whose class names are in 'class_names'."""
    from sklearn.datasets import load_digits
    d = load_digits()
    tmp = tmp_path_factory.mktemp("named")
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                      "eight", "nine"])
    x = (d.images / 16.0).astype(np.float32)
    np.savez(tmp / "digits.npz", x_train=x[:1200], y_train=d.target[:1200],
             x_test=x[1200:], y_test=d.target[1200:], class_names=names)
    assert main(["train", "--set", "data.source=npz", "--set", f"data.path={tmp / 'digits.npz'}",
                 "--set", "model.options.filters=4", "--set", "model.options.hidden=16",
                 "--set", "train.epochs=1", "--set", "output.progress=false",
                 "--run-dir", str(tmp / "run")]) == 0
    return tmp


def test_class_names_travel_in_the_checkpoint(named_run, capsys):
    from dtnn.io.checkpoint import read_meta
    ckpt = str(named_run / "run" / "checkpoint.h5")
    assert read_meta(ckpt)["classes"][7] == "seven"
    np.save(named_run / "one.npy", np.zeros((8, 8), np.float32))
    capsys.readouterr()
    assert main(["predict", ckpt, str(named_run / "one.npy"), "--json", "--top", "10"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert {t["class"] for t in row["top"]} == set(read_meta(ckpt)["classes"])
    assert main(["eval", ckpt]) == 0
    assert "seven" in capsys.readouterr().out
    from dtnn.serve.predictor import Predictor
    assert Predictor(ckpt, warmup=False).card()["classes"][0] == "zero"
