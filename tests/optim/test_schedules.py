"""Stateless LR schedules against torch.optim.lr_scheduler stepped once per step."""
import math
import warnings

import numpy as np
import pytest
import torch

from dtnn.errors import ConfigError
from dtnn.optim import SCHEDULES, WarmupSchedule, build_schedule

SPE = 13       # steps per epoch
EPOCHS = 20
LR = 0.1


def torch_lrs(make_scheduler, steps, lr=LR):
    """lr used at each step 0..steps-1 by a torch scheduler stepped after every step."""
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sched = make_scheduler(opt)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(steps):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    return np.array(out)


def ours(schedule, steps):
    return np.array([schedule.lr_at(t) for t in range(steps)])


def test_constant():
    s = build_schedule("constant", LR, SPE, EPOCHS)
    assert all(s.lr_at(t) == LR for t in (0, 1, SPE, 10 ** 6))


def test_step_matches_torch_steplr():
    s = build_schedule("step", LR, SPE, EPOCHS, step_size=7, gamma=0.1)
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7 * SPE, gamma=0.1),
                    EPOCHS * SPE)
    np.testing.assert_allclose(ours(s, EPOCHS * SPE), ref, rtol=1e-12)
    # boundaries: epoch 6 last step keeps lr, epoch 7 first step decays
    assert s.lr_at(7 * SPE - 1) == pytest.approx(LR)
    assert s.lr_at(7 * SPE) == pytest.approx(LR * 0.1)
    assert s.lr_at(14 * SPE) == pytest.approx(LR * 0.01)


def test_multistep_matches_torch():
    milestones = [3, 8, 8, 15]  # a repeated milestone applies gamma twice, as in torch
    s = build_schedule("multistep", LR, SPE, EPOCHS, milestones=milestones, gamma=0.5)
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.MultiStepLR(
        o, milestones=[m * SPE for m in milestones], gamma=0.5), EPOCHS * SPE)
    np.testing.assert_allclose(ours(s, EPOCHS * SPE), ref, rtol=1e-12)
    assert s.lr_at(8 * SPE) == pytest.approx(LR * 0.125)


def test_multistep_unsorted_milestones():
    a = build_schedule("multistep", LR, SPE, EPOCHS, milestones=[15, 3])
    b = build_schedule("multistep", LR, SPE, EPOCHS, milestones=[3, 15])
    assert ours(a, EPOCHS * SPE).tolist() == ours(b, EPOCHS * SPE).tolist()


@pytest.mark.parametrize("min_lr", [0.0, 1e-3])
def test_cosine_matches_torch(min_lr):
    total = EPOCHS * SPE
    s = build_schedule("cosine", LR, SPE, EPOCHS, min_lr=min_lr)
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(
        o, T_max=total, eta_min=min_lr), total + 1)
    np.testing.assert_allclose(ours(s, total + 1), ref, rtol=1e-9, atol=1e-12)
    assert s.lr_at(0) == LR
    assert s.lr_at(total // 2) == pytest.approx((LR + min_lr) / 2, rel=1e-2)
    assert s.lr_at(total) == pytest.approx(min_lr, abs=1e-15)
    assert s.lr_at(total + 500) == pytest.approx(min_lr, abs=1e-15)  # held after the end


def test_warmup_steps_boundary_values():
    s = build_schedule("constant", LR, SPE, EPOCHS, warmup_steps=10, warmup_start_factor=0.2)
    assert isinstance(s, WarmupSchedule)
    assert s.lr_at(0) == pytest.approx(0.2 * LR)
    assert s.lr_at(5) == pytest.approx((0.2 + 0.8 * 0.5) * LR)
    assert s.lr_at(9) == pytest.approx((0.2 + 0.8 * 0.9) * LR)
    assert s.lr_at(10) == LR
    assert s.lr_at(11) == LR
    lrs = ours(s, 11)
    assert np.all(np.diff(lrs) > 0)


def test_warmup_epochs_and_default_factor():
    s = build_schedule("step", LR, SPE, EPOCHS, step_size=1, gamma=0.5, warmup_epochs=2)
    assert s.warmup_steps == 2 * SPE
    assert s.lr_at(0) == pytest.approx(0.1 * LR)  # default warmup_start_factor 0.1
    # the warm-up factor multiplies the wrapped schedule's value
    t = SPE + 3
    assert s.lr_at(t) == pytest.approx(LR * 0.5 * (0.1 + 0.9 * t / (2 * SPE)))
    assert s.lr_at(2 * SPE) == pytest.approx(LR * 0.25)
    half = build_schedule("constant", LR, SPE, EPOCHS, warmup_epochs=0.5)
    assert half.warmup_steps == round(0.5 * SPE)


def test_warmup_matches_torch_chained_linear_and_step():
    w = 2 * SPE
    s = build_schedule("step", LR, SPE, EPOCHS, step_size=1, gamma=0.7,
                       warmup_steps=w, warmup_start_factor=0.25)

    def make(o):
        lin = torch.optim.lr_scheduler.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=w)
        step = torch.optim.lr_scheduler.StepLR(o, step_size=SPE, gamma=0.7)
        return torch.optim.lr_scheduler.ChainedScheduler([lin, step])

    ref = torch_lrs(make, 5 * SPE)
    np.testing.assert_allclose(ours(s, 5 * SPE), ref, rtol=1e-9)


def test_warmup_over_cosine_reaches_cosine():
    s = build_schedule("cosine", LR, SPE, EPOCHS, warmup_steps=20, warmup_start_factor=0.0)
    plain = build_schedule("cosine", LR, SPE, EPOCHS)
    assert s.lr_at(0) == 0.0
    for t in (20, 21, 100, EPOCHS * SPE):
        assert s.lr_at(t) == plain.lr_at(t)
    assert s.lr_at(19) == pytest.approx(plain.lr_at(19) * 19 / 20)


def test_zero_warmup_returns_plain_schedule():
    assert not isinstance(build_schedule("constant", LR, SPE, EPOCHS, warmup_steps=0),
                          WarmupSchedule)


def test_stateless():
    s = build_schedule("cosine", LR, SPE, EPOCHS, warmup_epochs=1)
    forward = ours(s, 100)
    backward = np.array([s.lr_at(t) for t in reversed(range(100))])[::-1]
    np.testing.assert_array_equal(forward, backward)
    with pytest.raises(ValueError):
        s.lr_at(-1)


@pytest.mark.parametrize("name,epochs,options,match", [
    ("step", EPOCHS, dict(step_size=7, gama=0.1), "unknown option 'gama'"),
    ("step", EPOCHS, dict(), "missing required option 'step_size'"),
    ("step", EPOCHS, dict(step_size=0), "'step_size' must be >= 1"),
    ("step", EPOCHS, dict(step_size=2.5), "'step_size' must be an integer"),
    ("multistep", EPOCHS, dict(milestones=5), "'milestones' must be a list"),
    ("cosine", None, dict(), "needs the number of epochs"),
    ("cosine", EPOCHS, dict(min_lr="low"), "'min_lr' must be a number"),
    ("constant", EPOCHS, dict(warmup_steps=5, warmup_epochs=1), "not both"),
    ("constant", EPOCHS, dict(warmup_start_factor=1.5, warmup_steps=3), "warmup_start_factor"),
    ("constant", EPOCHS, dict(warmup_step=3), "unknown option 'warmup_step'"),
    ("linear", EPOCHS, dict(), "unknown lr schedule 'linear'"),
])
def test_bad_options(name, epochs, options, match):
    with pytest.raises(ConfigError, match=match):
        build_schedule(name, LR, SPE, epochs, **options)


def test_bad_steps_per_epoch():
    with pytest.raises(ConfigError, match="steps_per_epoch"):
        build_schedule("constant", LR, 0, EPOCHS)


def test_registry_and_describe():
    assert set(SCHEDULES.names()) >= {"constant", "step", "multistep", "cosine"}
    text = build_schedule("step", LR, SPE, EPOCHS, step_size=7, warmup_epochs=1).describe()
    assert "7 epochs" in text and "warm-up" in text
    assert math.isclose(build_schedule("cosine", LR, SPE, 1).lr_at(SPE), 0.0, abs_tol=1e-15)
