"""Evaluations within an epoch, time-to-accuracy and stopping at the target."""
import json

import pytest

from dtnn.cli.main import main
from dtnn.engine.trainer import eval_points

DIGITS = ["--set", "data.source=digits", "--set", "model.name=simplecnn",
          "--set", "model.options.filters=8", "--set", "model.options.hidden=32",
          "--set", "train.batch_size=32", "--set", "optim.lr=0.05",
          "--set", "output.progress=false"]


def _records(run_dir):
    return [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("steps,k,expected", [
    (10, 1, [10]), (10, 3, [3, 6, 10]), (10, 4, [2, 5, 7, 10]), (2, 4, [1, 2]),
    (1, 3, [1])])
def test_eval_points_end_at_the_epoch_end(steps, k, expected):
    assert eval_points(steps, k) == expected


def test_evals_per_epoch_write_eval_records(tmp_path):
    assert main(["train", *DIGITS, "--set", "train.epochs=2",
                 "--set", "train.evals_per_epoch=3", "--set", "train.target_accuracy=0.999",
                 "--run-dir", str(tmp_path)]) == 0
    recs = _records(tmp_path)
    evals = [r for r in recs if r.get("event") == "eval"]
    epochs = [r for r in recs if r.get("event") != "eval"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert len(evals) == 6
    progress = [r["epoch_progress"] for r in evals]
    assert progress == sorted(progress) and progress[2] == 1.0 and progress[-1] == 2.0
    for r in evals:
        assert 0 < r["train_seconds"] <= r["wall_seconds"]
    # the epoch record carries the epoch-end evaluation
    assert epochs[0]["eval_accuracy"] == evals[2]["eval_accuracy"]
    assert epochs[-1]["train_seconds"] >= evals[-1]["train_seconds"]


def test_stop_at_target_ends_training_at_the_first_reaching_evaluation(tmp_path):
    assert main(["train", *DIGITS, "--set", "train.epochs=3",
                 "--set", "train.evals_per_epoch=4", "--set", "train.target_accuracy=0.01",
                 "--set", "train.stop_at_target=true", "--run-dir", str(tmp_path)]) == 0
    recs = _records(tmp_path)
    evals = [r for r in recs if r.get("event") == "eval"]
    epochs = [r for r in recs if r.get("event") != "eval"]
    assert len(evals) == 1 and evals[0]["epoch_progress"] == pytest.approx(0.25, abs=0.05)
    assert evals[0]["time_to_accuracy"] == evals[0]["train_seconds"]
    assert len(epochs) == 1 and epochs[0]["time_to_accuracy"] is not None
    assert (tmp_path / "checkpoint.h5").exists() and (tmp_path / "report.json").exists()


def test_unreached_target_leaves_time_to_accuracy_empty(tmp_path):
    assert main(["train", *DIGITS, "--set", "train.epochs=1",
                 "--set", "train.target_accuracy=1.0", "--run-dir", str(tmp_path)]) == 0
    (rec,) = [r for r in _records(tmp_path) if r.get("event") != "eval"]
    assert rec["time_to_accuracy"] is None and rec["target_accuracy"] == 1.0


def test_stop_at_target_without_a_target_is_a_config_error(tmp_path, capsys):
    assert main(["train", *DIGITS, "--set", "train.stop_at_target=true",
                 "--run-dir", str(tmp_path)]) == 2
    assert "train.stop_at_target" in capsys.readouterr().err
