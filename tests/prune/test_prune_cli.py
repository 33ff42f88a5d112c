"""`dtnn prune` / `dtnn export` / `dtnn bench infer` end to end on small real data
(scikit-learn digits), exact resume of an interrupted prune, one-line errors."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from dtnn.cli.main import main
from dtnn.io.checkpoint import load_checkpoint, save_checkpoint

TRAIN = ["--set", "data.source=digits", "--set", "model.name=cnet",
         "--set", "model.options.width=0.0625", "--set", "model.options.hidden=128",
         "--set", "train.epochs=1", "--set", "train.batch_size=32",
         "--set", "output.progress=false",
         # pinned: an interrupted prune is compared bit for bit with an uninterrupted one,
         # and bestof's choices while it tunes follow the clock
         "--set", "model.conv_algorithm=im2col"]
PRUNE = ["--keep", "0.5", "--set", "prune.step_fraction=0.2", "--set", "prune.batches=2",
         "--set", "prune.finetune_steps=3", "--set", "prune.latency_reps=2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("train")
    assert main(["train", *TRAIN, "--run-dir", str(run)]) == 0
    return str(run / "checkpoint.h5")


@pytest.fixture(scope="module")
def pruned_run(trained, tmp_path_factory):
    run = tmp_path_factory.mktemp("prune")
    assert main(["prune", trained, *PRUNE, "--run-dir", str(run)]) == 0
    return run


def _records(run):
    return [json.loads(l) for l in open(os.path.join(run, "prune.jsonl"))]


def test_prune_writes_its_run_directory(pruned_run, trained):
    for name in ("pruned.h5", "prune.jsonl", "prune.csv", "prune_curves.png",
                 "maps_per_layer.png", "prune_state.h5", "config.toml"):
        assert (pruned_run / name).exists(), name
    recs = _records(pruned_run)
    assert recs[0]["step"] == 0 and recs[0]["removed"] == 0
    assert recs[-1]["maps_kept"] == pytest.approx(0.5, abs=0.02)
    assert recs[-1]["dense_units"] < recs[0]["dense_units"]   # dense pruning is on
    assert all(0 <= r["test_accuracy"] <= 1 and r["test_macro_f1"] is not None for r in recs)
    params = [r["params"] for r in recs]
    assert params == sorted(params, reverse=True) and params[-1] < params[0]
    ckpt = load_checkpoint(str(pruned_run / "pruned.h5"))
    assert ckpt.model.num_params() == recs[-1]["params"]
    assert ckpt.meta["prune"]["criterion"] == "taylor"


def test_pruned_checkpoint_works_everywhere(pruned_run, tmp_path, capsys):
    pruned = str(pruned_run / "pruned.h5")
    assert main(["eval", pruned, "--out", str(tmp_path / "r.json")]) == 0
    acc = json.load(open(tmp_path / "r.json"))["accuracy"]
    assert acc == pytest.approx(_records(pruned_run)[-1]["test_accuracy"], abs=1e-9)
    x = load_checkpoint(pruned).model.input_shape
    np.save(tmp_path / "x.npy", np.zeros((2,) + x, np.float32))
    assert main(["predict", pruned, str(tmp_path / "x.npy"), "--json"]) == 0
    assert main(["export", pruned, "--onnx", str(tmp_path / "m.onnx"), "--samples", "32",
                 "--json", str(tmp_path / "check.json")]) == 0
    check = json.load(open(tmp_path / "check.json"))
    assert check["inputs"] == "test-set" and check["max_abs_diff"] < 1e-3
    epoch = load_checkpoint(pruned).epoch
    assert main(["train", "--resume", pruned, "--set", f"train.epochs={epoch + 1}",
                 "--set", "train.max_steps_per_epoch=3",
                 "--run-dir", str(tmp_path / "more")]) == 0
    more = load_checkpoint(str(tmp_path / "more" / "checkpoint.h5"))
    assert more.model.get_config()["layers"] == load_checkpoint(pruned).model.get_config()["layers"]
    assert main(["bench", "infer", pruned, "--engine", "dtnn", "--engine", "dtnn-layers",
                 "--engine", "onnxruntime",
                 "--threads", "1", "--reps", "3", "--reps-n", "2", "--batch", "4",
                 "--json", str(tmp_path / "b.json")]) == 0
    bench = json.load(open(tmp_path / "b.json"))
    assert [r["engine"] for r in bench["rows"]] == ["dtnn", "dtnn-layers", "onnxruntime"]
    # the dtnn row is the fused plan: one kernel choice per conv / dense layer
    convs = [l for l in load_checkpoint(pruned).model.layers
             if l.registry_name in ("conv2d", "dense")]
    assert len(bench["rows"][0]["kernels"]["batch1"]) == len(convs)
    assert all(r["batch1"]["median_ms"] > 0 and r["peak_rss_mb"] > 0 for r in bench["rows"])


def test_interrupted_prune_resumes_exactly(trained, pruned_run, tmp_path, monkeypatch):
    from dtnn.prune import loop
    run = tmp_path / "interrupted"
    real_step, calls = loop.Pruner.step, []

    def failing_step(self):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real_step(self)

    monkeypatch.setattr(loop.Pruner, "step", failing_step)
    assert main(["prune", trained, *PRUNE, "--run-dir", str(run)]) == 130
    monkeypatch.setattr(loop.Pruner, "step", real_step)
    assert len(_records(run)) == 3
    assert main(["prune", trained, *PRUNE, "--run-dir", str(run), "--resume"]) == 0
    a, b = _records(pruned_run), _records(run)
    drop = ("latency_b1_ms",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in a] == \
           [{k: v for k, v in r.items() if k not in drop} for r in b]
    pa = load_checkpoint(str(pruned_run / "pruned.h5")).model.flat_params
    pb = load_checkpoint(str(run / "pruned.h5")).model.flat_params
    np.testing.assert_array_equal(pa, pb)


def test_same_run_dir_without_resume_is_refused(trained, pruned_run, capsys):
    assert main(["prune", trained, *PRUNE, "--run-dir", str(pruned_run)]) == 2
    assert "--resume" in capsys.readouterr().err


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "dtnn", *args], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONWARNINGS="ignore"))


@pytest.fixture(scope="module")
def dense_only(tmp_path_factory):
    from dtnn.config import Config
    from dtnn.layers import Dense, Flatten, ReLU
    from dtnn.models import Model
    model = Model([Flatten(), Dense(8), ReLU(), Dense(10)], (1, 8, 8)).build(0)
    path = str(tmp_path_factory.mktemp("dense") / "dense.h5")
    cfg = Config()
    cfg.data.source = "digits"
    save_checkpoint(path, model, step=0, epoch=0, meta={"config": cfg.to_dict()})
    return path


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("foreign") / "weights.h5")
    with h5py.File(path, "w") as f:
        f["w"] = np.zeros(3)
    return path


@pytest.mark.parametrize("case, words", [
    ("keep_high", "prune.keep must be in (0, 1]"),
    ("keep_negative", "prune.keep must be in (0, 1]"),
    ("criterion", "unknown pruning criterion 'magic'"),
    ("no_conv", "no Conv2D layer to prune"),
    ("foreign", "not a dtnn checkpoint"),
    ("missing", "file not found"),
    ("resume_nothing", "nothing to resume"),
    ("schedule", "prune.step_schedule must be constant or geometric"),
])
def test_prune_errors_are_one_line(case, words, trained, dense_only, foreign, tmp_path):
    ckpt = {"no_conv": dense_only, "foreign": foreign,
            "missing": str(tmp_path / "nope.h5")}.get(case, trained)
    extra = {"keep_high": ["--keep", "1.5"], "keep_negative": ["--keep", "-0.1"],
             "criterion": ["--criterion", "magic"], "resume_nothing": ["--resume"],
             "schedule": ["--keep", "0.5", "--set", "prune.step_schedule=linear"]}
    proc = _cli("prune", ckpt, *extra.get(case, ["--keep", "0.5"]),
                "--run-dir", str(tmp_path / "out"))
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert words in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "prune.jsonl").exists()


@pytest.mark.parametrize("args, words", [
    (["export", "{foreign}", "--onnx", "x.onnx"], "not a dtnn checkpoint"),
    (["bench", "infer", "{foreign}"], "not a dtnn checkpoint"),
    (["bench", "infer", "{trained}", "--batch", "0"], "--batch must be >= 1"),
])
def test_export_and_bench_errors(args, words, trained, foreign, tmp_path):
    args = [a.format(trained=trained, foreign=foreign) for a in args]
    proc = _cli(*args)
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert words in lines[0]


def test_final_finetuning_keeps_the_best(trained, tmp_path):
    run = tmp_path / "final"
    assert main(["prune", trained, *PRUNE, "--run-dir", str(run),
                 "--set", "prune.final_epochs=2", "--set", "output.keep_best=eval_accuracy",
                 "--set", "schedule.plateau_patience=1",
                 "--set", "prune.final_schedule=cosine"]) == 0
    recs = _records(run)
    assert recs[-1]["phase"] == "final" and recs[-1]["final_epochs"] >= 1
    best = load_checkpoint(str(run / "best.h5")).model.flat_params
    np.testing.assert_array_equal(load_checkpoint(str(run / "pruned.h5")).model.flat_params, best)
    assert recs[-1]["params"] == recs[-2]["params"]   # fine-tuning does not change shapes


@pytest.mark.parametrize("target", ["params", "flops"])
def test_parameter_and_flops_targets(trained, tmp_path, target):
    run = tmp_path / target
    assert main(["prune", trained, "--keep", "0.6", "--set", f"prune.target={target}",
                 "--set", "prune.step_fraction=0.1", "--set", "prune.batches=1",
                 "--set", "prune.finetune_steps=1", "--set", "prune.latency_reps=0",
                 "--set", "prune.eval_every=100", "--run-dir", str(run)]) == 0
    recs = _records(run)
    assert recs[-1][f"{target}_kept"] <= 0.6 < recs[-2][f"{target}_kept"]


def test_geometric_step_schedule():
    """"constant" removes step_fraction of the original maps every step, "geometric"
    of the maps left (smaller steps near the end)."""
    from dtnn.config import Config
    from dtnn.prune.loop import _targets
    cfg = Config()
    cfg.prune.keep, cfg.prune.step_fraction = 0.2, 0.1
    original = {"maps": 640}
    assert _targets(cfg, original, 320) == {"maps": 128, "step": 64}
    cfg.prune.step_schedule = "geometric"
    assert _targets(cfg, original, 320) == {"maps": 128, "step": 32}
    assert _targets(cfg, original, 5)["step"] == 1
