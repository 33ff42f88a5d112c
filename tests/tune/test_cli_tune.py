"""``dtnn tune`` pre-tunes a model into the cache; a later run starts from it."""
import json

import dtnn.tune as T
from dtnn.cli.main import main


def test_dtnn_tune_writes_cache_and_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DTNN_TUNE_CACHE", str(tmp_path / "cache"))
    try:
        rc = main(["tune", "--shape", "1,12,12", "--set", "model.name=\"simplecnn\"",
                   "--set", "model.options={filters = 4, hidden = 8}",
                   "--set", "train.batch_size=4", "--set", "train.eval_batch_size=3",
                   "--set", "tune.rounds=1", "--report", str(tmp_path / "rep")])
        assert rc == 0
        out = capsys.readouterr().out
        assert "conv" in out and "train" in out and "infer" in out
        rows = json.load(open(tmp_path / "rep" / "tuning.json"))
        conv = [r for r in rows if r["tuner"] in ("conv", "conv_infer")]
        assert len(conv) == 2 and all(r["winner"] for r in conv)
        cache_files = list((tmp_path / "cache").glob("*.json"))
        assert len(cache_files) == 1
        # a new process-wide tuner (a later run) takes the decision from the cache
        T.configure(T.TuneOptions())
        from dtnn.layers.conv import Conv2D
        import numpy as np
        layer = Conv2D(4, 3, padding=1, algorithm="bestof")
        layer.build((1, 12, 12), np.random.default_rng(0))
        key = layer.algorithm.key(layer.geometry(4), True)
        assert T.get_tuner("conv", layer.algorithm.names).settled(key) or \
            layer.algorithm.tuner().state(key).source == "cache"
    finally:
        T.configure()
