"""``dtnn train`` with model.conv_algorithm = "bestof" writes the tuning report and
fills the cache; the model trains as well as with a fixed variant."""
import json

import dtnn.tune as T
from dtnn.cli.main import main

ARGS = ["--set", "data.source=digits", "--set", "model.name=simplecnn",
        "--set", "model.options.filters=8", "--set", "model.options.hidden=32",
        "--set", "train.epochs=1", "--set", "train.batch_size=32",
        "--set", "optim.lr=0.05", "--set", "output.progress=false",
        "--set", 'model.conv_algorithm="bestof"', "--set", "tune.rounds=1",
        "--set", "train.max_steps_per_epoch=25"]


def test_train_with_bestof_writes_tuning_report(tmp_path, monkeypatch):
    monkeypatch.setenv("DTNN_TUNE_CACHE", str(tmp_path / "cache"))
    try:
        assert main(["train", *ARGS, "--run-dir", str(tmp_path / "run")]) == 0
        rows = json.loads((tmp_path / "run" / "tuning.json").read_text())
        train = [r for r in rows if r["tuner"] == "conv" and r["key"].endswith("train")]
        assert train and train[0]["winner"] and train[0]["source"] == "tuned"
        assert train[0]["labels"] and "im2col" in train[0]["stats"]
        assert "winner" in (tmp_path / "run" / "tuning.txt").read_text()
        assert list((tmp_path / "cache").glob("*.json"))
        report = json.loads((tmp_path / "run" / "report.json").read_text())
        assert report["accuracy"] > 0.3   # 25 steps of 32 digits; chance is 0.1
    finally:
        T.configure()
