"""benchmarks/ddp_peer.py under ``mpiexec -n 2``: the --bench throughput JSON, and the
time-to-accuracy evaluation schedule (--evals-per-epoch, --stop-at-target) on the
scikit-learn digits.  Skipped without torch, mpi4py or an mpiexec next to this Python."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "ddp_peer.py")
CONFIG = os.path.join(ROOT, "configs", "simplecnn.toml")
MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")

for _mod in ("torch", "mpi4py", "sklearn"):
    if importlib.util.find_spec(_mod) is None:
        pytest.skip(f"{_mod} not installed", allow_module_level=True)
if not os.path.exists(MPIEXEC):
    pytest.skip("no mpiexec next to this Python (pip 'mpich')", allow_module_level=True)

pytestmark = pytest.mark.slow

# small and quick: a 8-filter simplecnn, 6 steps of 2 x 32 digits per epoch
DIGITS = ["--set", "data.source=digits", "--set", "model.options.filters=8",
          "--set", "model.options.hidden=32", "--set", "train.epochs=2", "--max-steps", "6"]


def _peer(*args, timeout=240):
    """Run the peer on 2 ranks; returns rank 0's stdout lines (fails on error/timeout)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    cmd = [MPIEXEC, "-n", "2", sys.executable, SCRIPT, "-c", CONFIG, *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"timed out after {timeout} s: {' '.join(cmd)}\n{exc.stderr}")
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return [line for line in proc.stdout.splitlines() if line.strip()]


def test_bench_prints_one_json_object(tmp_path):
    out = tmp_path / "bench.json"
    lines = _peer("--bench", "--modes", "nosync,none,fp16", "--bench-steps", "2",
                  "--bench-warmup", "1", "--json", str(out))
    assert len(lines) == 1   # nothing but the result on stdout
    result = json.loads(lines[-1])
    assert json.loads(out.read_text()) == result
    assert result["framework"] == "torch-ddp" and result["model"] == "simplecnn"
    assert result["ranks"] == 2 and result["hosts"] == 1 and result["threads_per_rank"] == 1
    assert result["input_shape"] == [1, 28, 28]
    assert result["grad_bytes"] == 4 * result["params"] > 0
    rows = result["results"]
    assert [r["mode"] for r in rows] == ["nosync", "none", "fp16"]
    nosync = rows[0]["step_seconds"]
    for r in rows:
        assert r["ranks"] == 2 and r["steps"] == 2
        assert r["global_batch"] == 2 * r["batch_per_rank"] == 64   # global_batch_size = 64
        assert r["step_seconds"] > 0 and r["samples_per_second"] > 0
        assert r["compute_seconds"] == nosync
        assert r["exposed_comm_seconds"] == pytest.approx(max(0.0, r["step_seconds"] - nosync))
    assert rows[2]["hook"] == "fp16_compress_hook" and rows[1]["hook"] is None


def _records(lines):
    recs = [json.loads(line) for line in lines]
    return [r for r in recs if r["event"] == "eval"], [r for r in recs if r["event"] == "epoch"]


def test_stop_at_target_ends_after_the_first_evaluation():
    evals, epochs = _records(_peer(*DIGITS, "--evals-per-epoch", "3", "--target-accuracy",
                                   "0.0", "--stop-at-target"))
    assert len(evals) == 1 and len(epochs) == 1
    ev, ep = evals[0], epochs[0]
    assert ev["step"] == 2 and ev["epoch"] == 1 and ev["epoch_progress"] == pytest.approx(1 / 3)
    assert ev["time_to_accuracy"] is not None and ev["time_to_accuracy_wall"] is not None
    assert 0 < ev["time_to_accuracy"] <= ev["time_to_accuracy_wall"]
    assert ev["train_seconds"] <= ev["wall_seconds"]
    # the partial epoch's record: over the 2 steps done, after that evaluation
    assert ep["step"] == 2 and ep["epoch"] == 1
    assert ep["eval_accuracy"] == ev["eval_accuracy"]
    assert ep["time_to_accuracy"] == ev["time_to_accuracy"]
    assert ep["train_seconds"] <= ep["wall_seconds"] and ep["wall_seconds"] >= ev["wall_seconds"]
    assert ep["samples_per_second"] * ep["epoch_seconds"] == pytest.approx(2 * 64)


def test_evals_per_epoch_schedule():
    evals, epochs = _records(_peer(*DIGITS, "--evals-per-epoch", "3",
                                   "--target-accuracy", "0.0"))
    assert len(evals) == 2 * 3 and len(epochs) == 2
    assert [e["step"] for e in evals] == [2, 4, 6, 8, 10, 12]
    assert [e["epoch"] for e in evals] == [1, 1, 1, 2, 2, 2]
    assert [e["epoch_progress"] for e in evals] == pytest.approx([1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2])
    first = evals[0]["train_seconds"]
    assert all(e["time_to_accuracy"] == first for e in evals)   # stays at the first hit
    for e in evals:
        assert e["framework"] == "torch-ddp" and e["mode"] == "none"
        assert 0 < e["train_seconds"] <= e["wall_seconds"]
    walls = [e["wall_seconds"] for e in evals]
    assert walls == sorted(walls)
    assert [ep["step"] for ep in epochs] == [6, 12]
    assert epochs[1]["eval_accuracy"] == evals[-1]["eval_accuracy"]
    assert all(0 < ep["train_seconds"] <= ep["wall_seconds"] for ep in epochs)
