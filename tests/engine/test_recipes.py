"""Recipes: torch-like init, gradient clipping, the divergence guard, model options,
`dtnn models`, the classic LeNet shape and the learning-rate range test."""
import inspect
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from dtnn.cli.main import main
from dtnn.config import load_config
from dtnn.engine.guard import DivergenceGuard
from dtnn.engine.lr_find import RangeSchedule, suggest
from dtnn.errors import ConfigError, TrainingDiverged, TrainingStalled
from dtnn.layers import Conv2D, Dense
from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.models import MODELS, build_model
from dtnn.models.options import MODEL_OPTIONS, check_options, format_models_table
from dtnn.optim import build_optimizer, clip_grad_norm, grad_norm
from dtnn.parallel.context import SerialContext

torch = pytest.importorskip("torch")


# --- initialisation ------------------------------------------------------------------
@pytest.mark.parametrize("make,shape", [
    (lambda: Conv2D(64, 3, init="torch"), (32, 12, 12)),
    (lambda: Dense(300, init="torch"), (500,)),
])
def test_torch_init_has_torchs_distribution(make, shape):
    layer = make()
    layer.build(shape, np.random.default_rng(0))
    w, b = layer.params["weight"], layer.params["bias"]
    if isinstance(layer, Conv2D):
        ref = torch.nn.Conv2d(shape[0], 64, 3)
    else:
        ref = torch.nn.Linear(shape[0], 300)
    tw, tb = ref.weight.detach().numpy(), ref.bias.detach().numpy()
    bound = 1 / math.sqrt(tw[0].size)
    # same support (uniform +-1/sqrt(fan_in)) and the same spread as torch's own init
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.9 * bound
    assert w.std() == pytest.approx(tw.std(), rel=0.03)
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.03)
    assert b.std() == pytest.approx(tb.std(), rel=0.25)


def _first_step_logit_rms(init: str) -> float:
    """One Nesterov SGD step at lr 0.05 on standardised inputs, as the shipped recipe."""
    model = build_model("simplecnn", (1, 28, 28), 10, seed=0, init=init)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    opt = build_optimizer("sgd", model, lr=0.05, momentum=0.9, nesterov=True)
    loss = SoftmaxCrossEntropy()
    loss.forward(model.forward(x, True), y)
    model.backward(loss.backward())
    opt.step()
    return float(np.sqrt(np.mean(model.forward(x, False) ** 2)))


def test_default_init_keeps_the_first_step_small():
    # the cause measured in benchmarks/results/recipes.md: with He init the first step
    # blows the logits up; with torch's init (the default now) they stay O(1)
    assert _first_step_logit_rms("torch") < 2.0
    assert _first_step_logit_rms("he") > 3 * _first_step_logit_rms("torch")


# --- clipping and the guard --------------------------------------------------------------
def test_clip_grad_norm_matches_torch():
    rng = np.random.default_rng(1)
    g = rng.standard_normal(10_000).astype(np.float32) * 3
    t = torch.tensor(g.copy(), requires_grad=True)
    t.grad = torch.tensor(g.copy())
    expected_norm = float(torch.nn.utils.clip_grad_norm_([t], 5.0))
    norm = clip_grad_norm(g, 5.0)
    assert norm == pytest.approx(expected_norm, rel=1e-5)
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-5)
    assert grad_norm(g) == pytest.approx(5.0, rel=1e-4)
    small = np.ones(4, np.float32)
    assert clip_grad_norm(small, 5.0) == pytest.approx(2.0) and (small == 1).all()
    bad = np.array([1.0, np.nan], np.float32)
    assert math.isnan(clip_grad_norm(bad, 1.0)) and bad[0] == 1.0


def test_guard_stops_on_non_finite_gradients_and_exploded_loss():
    guard = DivergenceGuard(SerialContext(), 10, factor=3.0, window=5)
    guard.check_gradients(12.0, 1, 0.1)
    with pytest.raises(TrainingDiverged, match="step 7.*lower optim.lr"):
        guard.check_gradients(float("nan"), 7, 0.1)
    for step in range(5):            # a healthy window: mean 2.3 < 3 ln 10
        guard.add_loss(2.3, step, 0.1)
    for step in range(4):
        guard.add_loss(30.0, step, 0.1)
    with pytest.raises(TrainingDiverged, match="exploded"):
        guard.add_loss(30.0, 9, 0.1)
    off = DivergenceGuard(SerialContext(), 10, factor=0.0, window=1)
    off.add_loss(1e9, 1, 0.1)


# --- the dead-network stop ---------------------------------------------------------------
def _logits(spread: float, n: int = 16, k: int = 10, seed: int = 0) -> np.ndarray:
    """A batch of logits: the same row for every input (``spread`` 0, a dead network) or
    rows that vary with the input by about ``spread``."""
    base = np.linspace(-1.0, 1.0, k)
    return base + spread * np.random.default_rng(seed).standard_normal((n, k))


def test_guard_stops_a_network_whose_output_ignores_its_input():
    ln10 = math.log(10)
    guard = DivergenceGuard(SerialContext(), 10, window=5, dead_steps=10, warmup_steps=5)
    # window 1-5 is in the warm-up; 6-10 and 11-15 are dead: 10 steps -> stop at 15
    for step in range(1, 15):
        guard.add_loss(ln10, step, 0.1, 2, _logits(0.0))
    with pytest.raises(TrainingStalled, match=r"stalled at step 15: the network's output "
                       r"no longer depends on its input.*loss 2.303, ln\(10\) = 2.303.*"
                       r"accuracy 12.5%.*lower optim.lr \(`dtnn lr-find`"):
        guard.add_loss(ln10, 15, 0.1, 2, _logits(0.0))


def test_guard_lets_a_slow_or_recovering_network_train():
    ln10 = math.log(10)
    # loss at ln 10 and accuracy at chance, but the logits vary with the input: a healthy
    # network at a small lr, not a dead one
    slow = DivergenceGuard(SerialContext(), 10, window=5, dead_steps=10)
    for step in range(1, 101):
        slow.add_loss(ln10, step, 1e-5, 2, _logits(0.01, seed=step))
    # a dead stretch shorter than dead_steps, then a live window: the streak restarts
    back = DivergenceGuard(SerialContext(), 10, window=5, dead_steps=10)
    for step in range(1, 101):
        alive = 6 <= step <= 10 or step % 10 in range(1, 6)
        back.add_loss(ln10, step, 0.1, 2, _logits(0.5 if alive else 0.0, seed=step))
    off = DivergenceGuard(SerialContext(), 10, window=5, dead_steps=0)
    for step in range(1, 101):
        off.add_loss(ln10, step, 0.1, 2, _logits(0.0))
    assert load_config(None, []).train.dead_network_epochs == 1.0   # on by default
    with pytest.raises(ConfigError, match="train.dead_network_epochs must be >= 0"):
        load_config(None, ["train.dead_network_epochs=-1"])


def _tiny_trainer(dead: bool):
    from dtnn.data import BatchLoader, Dataset
    from dtnn.engine.session import make_guard
    from dtnn.engine.trainer import Trainer
    from dtnn.layers import ReLU
    from dtnn.models import Model
    from dtnn.optim.schedules import build_schedule
    rng = np.random.default_rng(3)
    y = rng.integers(0, 5, 256)
    x = rng.standard_normal((256, 12)).astype(np.float32)
    x[:, :5] += 2.0 * np.eye(5, dtype=np.float32)[y]
    ds = Dataset(x, y, [str(c) for c in range(5)], name="tiny")
    model = Model([Dense(24), ReLU(), Dense(16), ReLU(), Dense(5)], (12,)).build(0)
    if dead:   # every first-layer ReLU off for every input: the network is dead
        model.layers[0].params["bias"][:] = -1e3
    opt = build_optimizer("sgd", model, lr=0.05, momentum=0.9)
    loader = BatchLoader(ds, 32, seed=0)
    ctx = SerialContext()
    guard = make_guard(load_config(None, []), ctx, 5, loader.steps_per_epoch)
    return Trainer(model, opt, build_schedule("constant", 0.05, loader.steps_per_epoch),
                   loader, ctx, epochs=12, progress=False, guard=guard), ds


def test_a_dead_network_stops_with_advice_and_a_live_one_trains():
    trainer, ds = _tiny_trainer(dead=True)
    with pytest.raises(TrainingStalled, match="no longer depends on its input.*lr-find"):
        trainer.fit(ds)
    assert trainer.state.epoch <= 5     # 8 steps per epoch: stopped within a few epochs
    trainer, ds = _tiny_trainer(dead=False)
    history = trainer.fit(ds)
    assert len(history) == 12 and history[-1]["eval_accuracy"] > 0.8


def test_diverging_run_is_one_line_without_numpy_warnings(tmp_path):
    args = [sys.executable, "-m", "dtnn", "train", "--set", "data.source=digits",
            "--set", "train.epochs=1", "--set", "optim.lr=1e4", "--set",
            "output.progress=false", "--run-dir", str(tmp_path / "run")]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    errors = [l for l in proc.stderr.splitlines() if "error" in l.lower()]
    assert len(errors) == 1 and "training diverged at step" in errors[0], proc.stderr
    assert "RuntimeWarning" not in proc.stderr and "Traceback" not in proc.stderr


def test_clip_and_guard_config_keys():
    cfg = load_config(None, ["optim.clip_grad_norm=1.5", "train.divergence_loss=0"])
    assert cfg.optim.clip_grad_norm == 1.5 and cfg.train.divergence_loss == 0
    with pytest.raises(ConfigError, match="optim.clip_grad_norm must be >= 0"):
        load_config(None, ["optim.clip_grad_norm=-1"])


# --- model options --------------------------------------------------------------------
def test_option_table_matches_the_builders():
    for name, spec in MODEL_OPTIONS.items():
        params = inspect.signature(MODELS.get(name)).parameters
        for key, opt in spec.items():
            default = params[key].default
            default = list(default) if isinstance(default, tuple) else default
            assert default == opt.default, (name, key)
        taken = set(params) - {"input_shape", "num_classes", "conv_algorithm"}
        assert taken == set(spec), name


@pytest.mark.parametrize("model,options,message", [
    ("lenet", {"filters": 32}, "option 'filters' must be a list of 2 integers >= 1"),
    ("lenet", {"filters": [6, 16, 32]}, "a list of 2 integers"),
    ("lenet", {"padding": -1}, "option 'padding' must be an integer >= 0 or \"auto\""),
    ("simplecnn", {"filters": [32]}, "option 'filters' must be an integer >= 1, got \\[32\\]"),
    ("simplecnn", {"width": 0.5}, "unknown option 'width' \\(it takes: filters, hidden"),
    ("simplecnn", {"hiden": 8}, "did you mean 'hidden'"),
    ("vgg11_bn", {"width": 0}, "option 'width' must be a number > 0"),
    ("cnet", {"dropout": 1.0}, "a number >= 0 and < 1"),
    ("simplecnn", {"init": "xavier"}, "one of \"torch\", \"he\", \"glorot\""),
])
def test_bad_options_are_one_line_errors(model, options, message):
    with pytest.raises(ConfigError, match=message):
        check_options(model, options)
    with pytest.raises(ConfigError, match=message):   # before any data is loaded
        load_config(None, [f'model.name="{model}"'] + [
            f"model.options.{k}={json.dumps(v)}" for k, v in options.items()])


def test_lenet_shapes_and_parameter_counts():
    assert build_model("lenet", (1, 28, 28), 10).num_params() == 61_706     # 32x32 geometry
    assert build_model("lenet", (1, 32, 32), 10).num_params() == 61_706     # classic LeNet-5
    classic = build_model("lenet", (1, 28, 28), 10, padding=0)
    assert classic.num_params() == 44_426 and classic.layers[0].output_shape == (6, 24, 24)
    # conv32-conv64-fc128 unpadded on 28x28 (the "LeNet-like" baseline): 184,586
    assert build_model("lenet", (1, 28, 28), 10, padding=0, filters=[32, 64],
                       hidden=[128]).num_params() == 184_586


def test_dtnn_models_lists_every_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in MODEL_OPTIONS:
        assert f"\n{name} " in out
    assert "padding" in out and "[6, 16]" in out and format_models_table() in out
    assert main(["models", "lenet", "-o", "padding=0"]) == 0
    assert "total parameters: 44,426" in capsys.readouterr().out
    assert main(["models", "lenet", "-o", "filters=32"]) == 2
    assert "list of 2 integers" in capsys.readouterr().err


# --- the learning-rate range test -------------------------------------------------------
def test_range_schedule_and_suggestion():
    sched = RangeSchedule(1e-4, 1.0, 101, 10)
    assert sched.lr_at(0) == pytest.approx(1e-4) and sched.lr_at(100) == pytest.approx(1.0)
    assert sched.lr_at(50) == pytest.approx(1e-2)
    lrs = [sched.lr_at(i) for i in range(101)]
    # a loss that falls until lr 0.1, then rises
    loss = [2.3 - 1.5 / (1 + math.exp(-3 * (math.log10(lr) + 2.5))) + max(0, math.log10(lr) + 1)
            for lr in lrs]
    s = suggest(lrs, loss)
    assert s["min_loss_lr"] == pytest.approx(0.1, rel=0.1)
    assert s["suggested_lr"] == pytest.approx(s["min_loss_lr"])   # the default rule
    assert suggest(lrs, loss, fraction=0.1)["suggested_lr"] == pytest.approx(
        s["min_loss_lr"] / 10)
    assert 1e-3 < s["steepest_lr"] < 1e-2
    assert suggest(lrs[:5], loss[:5])["suggested_lr"] is None


def test_lr_find_cli_writes_plot_json_and_config(tmp_path, capsys):
    out = tmp_path / "lr"
    cfg_path = tmp_path / "tuned.toml"
    assert main(["lr-find", "--set", "data.source=digits", "--set", "model.options.filters=8",
                 "--set", "output.progress=false", "--steps", "60", "--end-lr", "3",
                 "--out", str(out), "--write-config", str(cfg_path)]) == 0
    found = json.loads((out / "lr_find.json").read_text())
    assert (out / "lr_find.png").stat().st_size > 1000
    assert found["steps"] > 20 and 1e-5 <= found["suggested_lr"] <= 3
    # on this easy data the loss must have fallen well below ln 10 somewhere
    assert min(found["smoothed"]) < 0.8 * math.log(10)
    tuned = load_config(str(cfg_path))
    assert tuned.optim.lr == pytest.approx(found["suggested_lr"], rel=1e-2)
    assert tuned.model.options["filters"] == 8
    assert "suggested lr" in capsys.readouterr().out
    assert main(["lr-find", "--set", "data.source=digits", "--steps", "5"]) == 2
    assert main(["lr-find", "--set", "data.source=digits", "--fraction", "0"]) == 2
    assert "--fraction must be in (0, 1]" in capsys.readouterr().err
