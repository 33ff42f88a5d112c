"""``dtnn train`` end to end under ``mpiexec -n 2`` (subprocess, hard timeout), and
resuming its checkpoint with a different number of processes."""
import json
import os
import sys

import pytest

from ._util import clean_env, mpiexec, run

pytestmark = pytest.mark.timeout(240, method="thread")

SETTINGS = ['data.source="synthetic"',
            "data.options={shape=[1,10,10],classes=3,n_train=192,n_test=60}",
            "model.options={filters=2,hidden=8}", "train.batch_size=16", "train.epochs=1",
            "output.progress=false", "schedule.name=\"constant\""]


def _train(n, run_dir, extra=(), resume=None):
    pytest.importorskip("dtnn.io.checkpoint")
    cmd = [sys.executable, "-m", "dtnn", "train", "--run-dir", str(run_dir)]
    for s in list(SETTINGS) + list(extra):
        cmd += ["--set", s]
    if resume:
        cmd += ["--resume", resume]
    if n > 1:
        cmd = [mpiexec(), "-n", str(n)] + cmd
    code, out, err, _ = run(cmd, timeout=180, env=clean_env())
    assert code == 0, err[-3000:]
    return err


def test_train_two_processes_then_resume_on_one(tmp_path):
    run_dir = tmp_path / "run"
    log = _train(2, run_dir)
    assert "2 process(es)" in log and "[r0]" in log
    names = set(os.listdir(run_dir))
    assert {"checkpoint.h5", "metrics.jsonl", "report.json", "config.toml"} <= names
    records = [json.loads(l) for l in open(run_dir / "metrics.jsonl")]
    assert len(records) == 1 and records[0]["processes"] == 2  # written once, by rank 0
    assert records[0]["step"] == 192 // 32
    _train(1, run_dir, extra=["train.epochs=2"], resume=str(run_dir / "checkpoint.h5"))
    records = [json.loads(l) for l in open(run_dir / "metrics.jsonl")]
    assert [r["processes"] for r in records] == [2, 1]
    assert records[1]["step"] == 192 // 32 + 192 // 16
