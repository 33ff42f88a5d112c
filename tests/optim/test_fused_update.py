"""The fused compiled optimizer update (csrc/optim.c) against its numpy twin (same
bits), at 1 and 2 OpenMP threads, and both against torch.optim in float64 (an
independent oracle) over several steps; the optimizers pick it for float32 vectors."""
import numpy as np
import pytest
import torch

from dtnn.optim import SGD, Adam, AdamW
from dtnn.optim import _update as twin
from dtnn.optim._update import adam_scalars, kernels

ext = pytest.importorskip(
    "dtnn._kernels._optim",
    reason="compiled kernels not built (run `pip install -e .`)")

# odd size: the blocks of the C loop and the SIMD tails are both exercised; above the
# kernel's parallel threshold, so two threads really split it
N = 300_001
STEPS = 6

SGD_CASES = [
    dict(lr=0.05),
    dict(lr=0.05, weight_decay=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4),
    dict(lr=0.05, momentum=0.8, weight_decay=0.05, dampening=0.1),
]
ADAM_CASES = [
    (Adam, dict(lr=0.01)),
    (Adam, dict(lr=0.01, weight_decay=0.1)),
    (AdamW, dict(lr=0.01)),
    (AdamW, dict(lr=0.01, weight_decay=0.2, betas=(0.3, 0.9))),   # |1 - beta1| >= 0.5
    (Adam, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6)),
]


def _ids(kw):
    return ",".join(f"{k}={v}" for k, v in kw.items())


def problem(n=N, seed=0):
    """Start point, a 0/1 decay mask and a fixed sequence of gradients (independent of
    the iterate, so float32 and float64 runs see the same gradients)."""
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(n).astype(np.float32)
    mask = (rng.random(n) < 0.7).astype(np.float32)
    grads = [(rng.standard_normal(n) * (1 + t)).astype(np.float32) for t in range(STEPS)]
    grads[1][: n // 5] = 0.0   # zero gradients (Adam's v = 0 path)
    return x0, mask, grads


def run(cls, kw, x0, mask, grads, force_twin=False, lrs=None, force_compiled=False):
    p = x0.copy()
    g = np.zeros_like(p)
    opt = cls(p, g, mask, **kw)
    if force_twin:   # the same object on the twin path
        sgd, adam, _ = kernels(np.zeros(1))   # float64: always the twins
        opt._update = sgd if cls is SGD else adam
        opt._work = (np.empty_like(p), np.empty_like(p))
    elif force_compiled and opt._update is not (ext.sgd_update if cls is SGD else ext.adam_update):
        # DTNN_KERNELS=numpy made the optimizer pick the twin: this file checks the
        # compiled pass, so it is put in by hand (it needs no work vectors)
        opt._update = ext.sgd_update if cls is SGD else ext.adam_update
        opt._work = None
    for t, gt in enumerate(grads):
        if lrs is not None:
            opt.lr = lrs[t]
        g[...] = gt
        opt.step()
        np.testing.assert_array_equal(g, gt)   # grads are left intact
    return p, opt


def torch_run(torch_cls, kw, x0, mask, grads, lrs=None):
    """float64 torch with two param groups: decayed entries (mask 1) and the others."""
    kw = dict(kw)
    wd = kw.pop("weight_decay", 0.01 if torch_cls is torch.optim.AdamW else 0.0)
    on = mask != 0
    pd = torch.tensor(x0[on].astype(np.float64), requires_grad=True)
    pn = torch.tensor(x0[~on].astype(np.float64), requires_grad=True)
    opt = torch_cls([{"params": [pd], "weight_decay": wd},
                     {"params": [pn], "weight_decay": 0.0}], **kw)
    for t, gt in enumerate(grads):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[t]
        pd.grad = torch.tensor(gt[on].astype(np.float64))
        pn.grad = torch.tensor(gt[~on].astype(np.float64))
        opt.step()
    out = np.empty(len(x0))
    out[on], out[~on] = pd.detach().numpy(), pn.detach().numpy()
    return out


def test_optimizers_use_the_compiled_pass_for_float32():
    from dtnn._kernels.isa import requested
    x0, mask, _ = problem(100)
    g = np.zeros_like(x0)
    if requested(strict=False) == "numpy":   # DTNN_KERNELS=numpy: the twins, on purpose
        assert SGD(x0.copy(), g, mask, lr=0.1)._update is twin.sgd_update
        assert Adam(x0.copy(), g, mask, lr=0.1)._update is twin.adam_update
    else:
        assert SGD(x0.copy(), g, mask, lr=0.1)._update is ext.sgd_update
        assert Adam(x0.copy(), g, mask, lr=0.1)._update is ext.adam_update
    # float64 parameters: the twin (the compiled pass is float32 only)
    p64 = x0.astype(np.float64)
    assert SGD(p64, np.zeros_like(p64), mask, lr=0.1)._update is twin.sgd_update


@pytest.mark.parametrize("kw", SGD_CASES, ids=_ids)
def test_sgd_compiled_equals_twin_and_matches_torch_float64(kw):
    x0, mask, grads = problem()
    lrs = [kw["lr"] * f for f in (0.2, 0.6, 1.0, 1.0, 0.5, 0.1)]   # lr changes between steps
    ours, opt = run(SGD, kw, x0, mask, grads, lrs=lrs, force_compiled=True)
    assert opt._update is ext.sgd_update
    ref_twin, _ = run(SGD, kw, x0, mask, grads, force_twin=True, lrs=lrs)
    np.testing.assert_array_equal(ours, ref_twin)
    ref = torch_run(torch.optim.SGD, kw, x0, mask, grads, lrs=lrs)
    assert np.max(np.abs(ref - x0)) > 1e-2
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * np.max(np.abs(ref)))


@pytest.mark.parametrize("cls,kw", ADAM_CASES, ids=lambda c: c.__name__ if isinstance(c, type) else _ids(c))
def test_adam_compiled_equals_twin_and_matches_torch_float64(cls, kw):
    x0, mask, grads = problem(seed=1)
    lrs = [kw["lr"] * f for f in (1.0, 0.5, 1.0, 2.0, 1.0, 0.3)]
    ours, opt = run(cls, kw, x0, mask, grads, lrs=lrs, force_compiled=True)
    assert opt._update is ext.adam_update
    ref_twin, _ = run(cls, kw, x0, mask, grads, force_twin=True, lrs=lrs)
    np.testing.assert_array_equal(ours, ref_twin)
    torch_cls = torch.optim.AdamW if cls is AdamW else torch.optim.Adam
    ref = torch_run(torch_cls, kw, x0, mask, grads, lrs=lrs)
    assert np.max(np.abs(ref - x0)) > 1e-2
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * np.max(np.abs(ref)))


def test_same_bits_at_one_and_two_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl not installed")
    x0, mask, grads = problem(seed=2)
    outs = []
    for n in (1, 2):
        with threadpoolctl.threadpool_limits(n, user_api="openmp"):
            p_sgd, o_sgd = run(SGD, SGD_CASES[5], x0, mask, grads)
            p_adam, o_adam = run(AdamW, dict(lr=0.01, weight_decay=0.1), x0, mask, grads)
        outs.append((p_sgd, o_sgd.momentum_buffer, p_adam, o_adam.exp_avg, o_adam.exp_avg_sq))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the twin's numpy overflow notes
def test_direct_kernel_calls_equal_twins_with_special_values():
    """inf, nan, -0.0 and huge values flow through both the same way."""
    rng = np.random.default_rng(3)
    n = 1027
    p = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    p[:4] = [np.inf, -0.0, 3e38, np.nan]
    g[4:8] = [-0.0, np.inf, -3e38, np.nan]
    mask = (rng.random(n) < 0.5).astype(np.float32)
    for args in [(-0.1, 0.0, 0.0, 1.0, False, True), (-0.1, 0.01, 0.9, 1.0, True, False),
                 (-0.1, 0.01, 0.9, 0.7, False, False), (-0.1, 0.0, 0.9, 1.0, False, True)]:
        a = [p.copy(), g.copy(), mask, rng.standard_normal(n).astype(np.float32)]
        b = [x.copy() for x in a]
        ext.sgd_update(*a, *args)
        twin.sgd_update(*b, *args)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    for decoupled, wd in [(False, 0.0), (False, 0.1), (True, 0.1)]:
        for t in (1, 7):
            sc = adam_scalars(0.01, (0.9, 0.999), 1e-8, wd, decoupled, t)
            v = np.abs(rng.standard_normal(n)).astype(np.float32)
            a = [p.copy(), g.copy(), mask, rng.standard_normal(n).astype(np.float32), v]
            b = [x.copy() for x in a]
            ext.adam_update(*a, **sc)
            twin.adam_update(*b, **sc)
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)


def test_bad_arguments_are_value_errors():
    p = np.zeros(8, np.float32)
    g = np.zeros(8, np.float32)
    m = np.ones(8, np.float32)
    buf = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match="float32"):
        ext.sgd_update(p.astype(np.float64), g, m, buf, -0.1, 0.0, 0.9, 1.0, False, True)
    with pytest.raises(ValueError, match="elements"):
        ext.sgd_update(p, g[:4], m, buf, -0.1, 0.0, 0.9, 1.0, False, True)
    with pytest.raises(ValueError, match="contiguous"):
        ext.sgd_update(np.zeros(16, np.float32)[::2], g, m, buf, -0.1, 0.0, 0.9, 1.0,
                       False, True)
    with pytest.raises(ValueError, match="overlap"):
        ext.sgd_update(p, g, m, p, -0.1, 0.0, 0.9, 1.0, False, True)
    ro = p.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ext.adam_update(ro, g, m, buf, buf.copy(), **adam_scalars(0.1, (0.9, 0.99), 1e-8, 0, False, 1))
    with pytest.raises(ValueError, match="decay"):
        ext.adam_update(p, g, m, buf, buf.copy(), **dict(
            adam_scalars(0.1, (0.9, 0.99), 1e-8, 0, False, 1), decay=3))
    # no momentum: buf is not needed
    ext.sgd_update(p, g, m, None, -0.1, 0.0, 0.0, 1.0, False, True)
