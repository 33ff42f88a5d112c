"""SGD / Adam / AdamW on flat vectors against torch.optim, state round trips, options."""
import numpy as np
import pytest
import torch

from dtnn.errors import ConfigError, DataError
from dtnn.layers.base import LAYERS, Layer
from dtnn.models.model import Model
from dtnn.optim import OPTIMIZERS, SGD, Adam, AdamW, build_optimizer

N = 300      # parameters
STEPS = 25


class Quadratic:
    """f(x) = 0.5 x^T A x - b^T x with A symmetric positive definite (float32)."""

    def __init__(self, seed):
        rng = np.random.default_rng(seed)
        q = rng.standard_normal((N, N)).astype(np.float32) / np.sqrt(N)
        self.A = (q @ q.T + 0.5 * np.eye(N, dtype=np.float32)).astype(np.float32)
        self.b = rng.standard_normal(N).astype(np.float32)
        self.x0 = rng.standard_normal(N).astype(np.float32)
        self.mask = (rng.random(N) < 0.6).astype(np.float32)

    def grad(self, x):
        return (self.A @ x - self.b).astype(np.float32)


def run_ours(cls, problem, steps=STEPS, lr_fn=None, **kw):
    p = problem.x0.copy()
    g = np.zeros_like(p)
    opt = cls(p, g, problem.mask, **kw)
    for t in range(steps):
        if lr_fn is not None:
            opt.lr = lr_fn(t)
        g[...] = problem.grad(p)
        g_before = g.copy()
        opt.step()
        np.testing.assert_array_equal(g, g_before)  # grads are left intact
    return p


def run_torch(torch_cls, problem, steps=STEPS, lr_fn=None, weight_decay=0.0, **kw):
    """torch with two param groups: decayed entries (mask 1) and the others."""
    on = problem.mask != 0
    p_dec = torch.tensor(problem.x0[on], requires_grad=True)
    p_nod = torch.tensor(problem.x0[~on], requires_grad=True)
    opt = torch_cls([{"params": [p_dec], "weight_decay": weight_decay},
                     {"params": [p_nod], "weight_decay": 0.0}], **kw)
    x = np.empty(N, np.float32)
    for t in range(steps):
        if lr_fn is not None:
            for group in opt.param_groups:
                group["lr"] = lr_fn(t)
        x[on], x[~on] = p_dec.detach().numpy(), p_nod.detach().numpy()
        g = problem.grad(x)
        p_dec.grad = torch.tensor(g[on])
        p_nod.grad = torch.tensor(g[~on])
        opt.step()
    x[on], x[~on] = p_dec.detach().numpy(), p_nod.detach().numpy()
    return x


def assert_close(ours, ref, x0):
    # the update must actually have moved the parameters...
    assert np.max(np.abs(ref - x0)) > 1e-2
    # ...and agree with torch to float32 rounding
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6 * np.max(np.abs(ref)))


SGD_CASES = [
    dict(lr=0.05),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, weight_decay=0.1),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1),
    dict(lr=0.05, momentum=0.8, weight_decay=0.05, dampening=0.1),
]


@pytest.mark.parametrize("kw", SGD_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_sgd_matches_torch(kw):
    problem = Quadratic(1)
    ours = run_ours(SGD, problem, **kw)
    ref = run_torch(torch.optim.SGD, problem, **kw)
    assert_close(ours, ref, problem.x0)


def test_sgd_changing_lr_matches_torch():
    problem = Quadratic(2)
    lr_fn = lambda t: 0.01 + 0.002 * t  # noqa: E731
    kw = dict(lr=0.01, momentum=0.9, weight_decay=0.01)
    assert_close(run_ours(SGD, problem, lr_fn=lr_fn, **kw),
                 run_torch(torch.optim.SGD, problem, lr_fn=lr_fn, **kw), problem.x0)


def test_weight_decay_respects_mask():
    """With zero gradients only masked entries shrink."""
    problem = Quadratic(3)
    for make in (lambda p, g, m: SGD(p, g, m, lr=0.1, weight_decay=0.5),
                 lambda p, g, m: AdamW(p, g, m, lr=0.1, weight_decay=0.5)):
        p = problem.x0.copy()
        g = np.zeros_like(p)
        make(p, g, problem.mask).step()
        on = problem.mask != 0
        np.testing.assert_array_equal(p[~on], problem.x0[~on])
        assert np.all(np.abs(p[on]) < np.abs(problem.x0[on]))


ADAM_CASES = [
    ("adam", dict(lr=0.01)),
    ("adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    ("adam", dict(lr=0.01, weight_decay=0.1)),
    ("adam", dict(lr=0.01, betas=(0.3, 0.9), weight_decay=0.05)),  # lerp's other branch
    ("adamw", dict(lr=0.01)),
    ("adamw", dict(lr=0.01, weight_decay=0.2)),
    ("adamw", dict(lr=0.02, betas=(0.85, 0.995), weight_decay=0.01)),
]


@pytest.mark.parametrize("name,kw", ADAM_CASES,
                         ids=lambda v: v if isinstance(v, str) else ",".join(map(str, v.values())))
def test_adam_matches_torch(name, kw):
    problem = Quadratic(4)
    cls = OPTIMIZERS.get(name)
    torch_cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    torch_kw = dict(kw)
    if name == "adamw":
        torch_kw.setdefault("weight_decay", 0.01)  # our AdamW default follows torch's
    ours = run_ours(cls, problem, **kw)
    ref = run_torch(torch_cls, problem, **torch_kw)
    assert_close(ours, ref, problem.x0)


def test_adam_decoupled_flag_is_adamw():
    problem = Quadratic(5)
    a = run_ours(Adam, problem, lr=0.01, weight_decay=0.1, decoupled=True)
    b = run_ours(AdamW, problem, lr=0.01, weight_decay=0.1)
    c = run_ours(Adam, problem, lr=0.01, weight_decay=0.1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_adam_changing_lr_matches_torch():
    problem = Quadratic(6)
    lr_fn = lambda t: 0.02 / (1 + t)  # noqa: E731
    assert_close(run_ours(AdamW, problem, lr_fn=lr_fn, lr=0.02, weight_decay=0.1),
                 run_torch(torch.optim.AdamW, problem, lr_fn=lr_fn, lr=0.02, weight_decay=0.1),
                 problem.x0)


RESUME_CASES = [
    (SGD, dict(lr=0.05)),
    (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (Adam, dict(lr=0.01, weight_decay=0.01)),
    (AdamW, dict(lr=0.01, weight_decay=0.1)),
]


@pytest.mark.parametrize("cls,kw", RESUME_CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_state_dict_resume_is_bit_exact(cls, kw):
    problem = Quadratic(7)
    full = run_ours(cls, problem, steps=10, **kw)

    p = problem.x0.copy()
    g = np.zeros_like(p)
    opt = cls(p, g, problem.mask, **kw)
    for _ in range(5):
        g[...] = problem.grad(p)
        opt.step()
    state = opt.state_dict()
    assert state["steps"] == 5 and isinstance(state["steps"], int)
    # the saved arrays are copies: stepping on does not change them
    snapshot = {k: np.copy(v) for k, v in state.items() if isinstance(v, np.ndarray)}
    g[...] = problem.grad(p)
    p_saved = p.copy()
    opt.step()
    for k, v in snapshot.items():
        np.testing.assert_array_equal(state[k], v)

    p2 = p_saved.copy()
    g2 = np.zeros_like(p2)
    opt2 = cls(p2, g2, problem.mask, **kw)
    buffers_before = {k: id(getattr(opt2, k)) for k in snapshot}
    opt2.load_state_dict(state)
    assert {k: id(getattr(opt2, k)) for k in snapshot} == buffers_before  # copied in place
    for _ in range(5):
        g2[...] = problem.grad(p2)
        opt2.step()
    assert opt2.steps == 10
    np.testing.assert_array_equal(p2, full)


def test_load_state_dict_rejects_mismatch():
    p = np.zeros(10, np.float32)
    g = np.zeros_like(p)
    m = np.ones_like(p)
    adam_state = Adam(p, g, m, lr=0.1).state_dict()
    with pytest.raises(DataError, match="missing 'momentum_buffer'"):
        SGD(p, g, m, lr=0.1, momentum=0.9).load_state_dict(adam_state)
    with pytest.raises(DataError, match="unexpected 'exp_avg'"):
        SGD(p, g, m, lr=0.1).load_state_dict(adam_state)
    small = Adam(np.zeros(4, np.float32), np.zeros(4, np.float32), np.ones(4, np.float32),
                 lr=0.1).state_dict()
    with pytest.raises(DataError, match="shape"):
        Adam(p, g, m, lr=0.1).load_state_dict(small)


def test_step_allocates_no_new_buffers():
    """All state lives in buffers made at construction/first step: repeated steps keep
    the same arrays, and they never alias params or grads."""
    problem = Quadratic(8)
    for opt_cls, kw in [(SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
                        (Adam, dict(lr=0.1, weight_decay=0.1))]:
        p = problem.x0.copy()
        g = np.ones_like(p)
        opt = opt_cls(p, g, problem.mask, **kw)
        opt.step()
        arrays = {k: v for k, v in vars(opt).items() if isinstance(v, np.ndarray)}
        ids = {k: id(v) for k, v in arrays.items()}
        for _ in range(3):
            opt.step()
        assert {k: id(v) for k, v in vars(opt).items() if isinstance(v, np.ndarray)} == ids
        assert opt.params is p and opt.grads is g


# --- build_optimizer from a model ------------------------------------------------------
if "_test_optim_affine" not in LAYERS:
    @LAYERS.register("_test_optim_affine")
    class _Affine(Layer):
        """y = x W + b (test-only layer)."""
        decay_params = ("W",)

        def build(self, input_shape, rng):
            super().build(input_shape, rng)
            units = self.config["units"]
            self.add_param("W", rng.standard_normal((input_shape[0], units)) * 0.1)
            self.add_param("b", np.zeros(units))
            self.output_shape = (units,)
            return self.output_shape


def make_model():
    return Model([LAYERS.get("_test_optim_affine")(units=3),
                  LAYERS.get("_test_optim_affine")(units=2)], (4,)).build(0)


def test_build_optimizer_uses_model_vectors():
    model = make_model()
    opt = build_optimizer("sgd", model, lr=0.1, momentum=0.9, weight_decay=1e-4)
    assert isinstance(opt, SGD)
    assert opt.params is model.flat_params and opt.grads is model.flat_grads
    assert opt.decay_mask is model.decay_mask
    assert 0 < model.decay_mask.sum() < model.decay_mask.size  # biases excluded
    before = model.flat_params.copy()
    model.flat_grads[...] = 1.0
    opt.step()
    np.testing.assert_allclose(model.flat_params, before - 0.1 * (1.0 + 1e-4 * before
                                                                  * model.decay_mask), rtol=1e-6)
    assert isinstance(build_optimizer("adamw", model, lr=1e-3), AdamW)
    adam = build_optimizer("adam", model, lr=1e-3, betas=[0.8, 0.9])  # lists from JSON work
    assert adam.betas == (0.8, 0.9)


@pytest.mark.parametrize("name,options,match", [
    ("sgd", dict(lr=0.1, momentun=0.9), "unknown option 'momentun'"),
    ("adam", dict(lr=0.1, decoupled=True, amsgrad=True), "unknown option 'amsgrad'"),
    ("adamw", dict(lr=0.1, decoupled=False), "unknown option 'decoupled'"),
    ("sgd", dict(momentum=0.9), "missing required option 'lr'"),
    ("rmsprop", dict(lr=0.1), "unknown optimizer 'rmsprop'"),
    ("sgd", dict(lr=-1), "'lr' must be >= 0"),
    ("sgd", dict(lr="fast"), "'lr' must be a number"),
    ("sgd", dict(lr=0.1, nesterov=True), "'nesterov'"),
    ("adam", dict(lr=0.1, betas=(0.9, 1.0)), "'betas'"),
    ("adam", dict(lr=0.1, betas=0.9), "'betas' must be a pair"),
])
def test_build_optimizer_bad_options(name, options, match):
    with pytest.raises(ConfigError, match=match):
        build_optimizer(name, make_model(), **options)


def test_registry_names():
    assert {"sgd", "adam", "adamw"} <= set(OPTIMIZERS.names())
