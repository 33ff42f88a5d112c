"""examples/ run as users run them (serial and under ``mpiexec -n 2``), and the custom
loop gives what ``dtnn train`` gives with the same config: bit for bit in one process,
to float tolerance under MPI."""
import json
import os
import re
import sys

import numpy as np
import pytest

from dtnn.data import load_synthetic, save_npz
from dtnn.io.checkpoint import load_checkpoint

from ._util import ROOT, clean_env, mpiexec, run

pytestmark = pytest.mark.timeout(600, method="thread")

EXAMPLES = os.path.join(ROOT, "examples")


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory):
    train, test = load_synthetic(shape=(1, 12, 12), classes=4, n_train=640, n_test=128, seed=3)
    path = str(tmp_path_factory.mktemp("data") / "small.npz")
    save_npz(path, train, test)
    return path


def _launch(args, procs, timeout=300, env=None):
    cmd = ([sys.executable] if procs == 1 else [mpiexec(), "-n", str(procs), sys.executable])
    code, out, err, _ = run(cmd + args, timeout=timeout, env=env)
    assert code == 0, f"{args}: exit {code}\n{out[-2000:]}\n{err[-3000:]}"
    return out


def _code_lines(path):
    text = open(path).read()
    body = text.split('"""', 2)[2]            # after the module docstring
    return [l for l in body.splitlines() if l.strip() and not l.strip().startswith("#")]


def test_custom_loop_is_at_most_15_lines():
    assert len(_code_lines(os.path.join(EXAMPLES, "custom_loop.py"))) <= 15


@pytest.mark.parametrize("procs", [1, 2])
def test_custom_loop_equals_dtnn_train(small_npz, tmp_path, procs):
    # Both run the default convolution, bestof.  Its choices while tuning follow the
    # clock, so the two runs start from the same decisions: `dtnn tune` settles them
    # into a cache both read (checked below from dtnn train's tuning report).
    env = clean_env({"DTNN_TUNE_CACHE": str(tmp_path / "tune")})
    config = ["--config", os.path.join(EXAMPLES, "custom_loop.toml"),
              "--set", f'data.source="{small_npz}"']
    _launch(["-m", "dtnn", "tune", *config, "--no-infer"], procs, env=env)
    mine = str(tmp_path / "loop.h5")
    out = _launch([os.path.join(EXAMPLES, "custom_loop.py"), small_npz, mine], procs, env=env)
    assert re.search(r"epoch 2: loss [0-9.]+, test accuracy [0-9.]+", out), out
    run_dir = str(tmp_path / "cli")
    _launch(["-m", "dtnn", "train", *config, "--set", "output.progress=false",
             "--run-dir", run_dir], procs, env=env)
    tuning = json.load(open(os.path.join(run_dir, "tuning.json")))
    trained = [r for r in tuning if r["tuner"] == "conv"]
    assert trained and all(r["source"] == "cache" for r in trained), tuning
    a, b = load_checkpoint(mine), load_checkpoint(os.path.join(run_dir, "checkpoint.h5"))
    assert a.step == b.step == 2 * (640 // (64 * procs))
    if procs == 1:
        assert np.array_equal(a.model.flat_params, b.model.flat_params)
        assert np.array_equal(a.states["optimizer"]["momentum_buffer"],
                              b.states["optimizer"]["momentum_buffer"])
    else:
        np.testing.assert_allclose(a.model.flat_params, b.model.flat_params, rtol=1e-5,
                                   atol=1e-6)
        assert a.states["compressor"]["world_size"] == 2   # every rank's PowerSGD state
    # checkpoint -> inference, on the same data: the accuracy of dtnn train's report
    out = _launch([os.path.join(EXAMPLES, "checkpoint_inference.py"), mine, small_npz], 1)
    acc = float(re.search(r"accuracy on 128 samples: ([0-9.]+)", out).group(1))
    report = json.load(open(os.path.join(run_dir, "report.json")))
    assert acc == pytest.approx(report["accuracy"], abs=1e-4)
    assert "sample 0:" in out


@pytest.mark.parametrize("procs", [1, 2])
def test_custom_model_example_learns(procs):
    out = _launch([os.path.join(EXAMPLES, "custom_model.py"), "3"], procs)
    assert "residual[" in out and "concat[" in out
    acc = float(re.findall(r"test accuracy ([0-9.]+)", out)[-1])
    assert acc > 0.6, out
