"""dist.defer_update: parsed from the config and the environment, checked; the model's
forward hook sees every layer in order (what the deferred update relies on)."""
import numpy as np
import pytest

from dtnn.errors import ConfigError
from dtnn.parallel.options import DistOptions


def test_default_config_and_env():
    assert DistOptions.resolve({}, env={}).defer_update is False   # opt in
    assert DistOptions.resolve({"defer_update": "off"}, env={}).defer_update is False
    assert DistOptions.resolve({"defer_update": "true"}, env={}).defer_update is True
    assert DistOptions.resolve({}, env={"DTNN_DEFER_UPDATE": "1"}).defer_update is True


@pytest.mark.parametrize("bad", ["maybe", "2"])
def test_bad_value_is_one_clear_error(bad):
    with pytest.raises(ConfigError, match="dist.defer_update") as err:
        DistOptions.resolve({"defer_update": bad}, env={})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("training", [True, False])
def test_forward_hook_covers_every_layer_before_it_runs(training):
    from dtnn.models import build_model
    model = build_model("simplecnn", (1, 28, 28), 10, seed=0)
    seen, ran = [], []
    for i, layer in enumerate(model.layers):   # record when each layer really runs
        for name in ("forward", "forward_relu", "forward_relu_pool"):
            if hasattr(layer, name):
                orig = getattr(layer, name)
                setattr(layer, name, (lambda f, i: lambda *a, **k: (ran.append((i, len(seen))),
                                                                     f(*a, **k))[1])(orig, i))
    model.forward_hook = seen.append
    model.forward(np.zeros((2, 1, 28, 28), np.float32), training=training)
    assert seen == sorted(seen) and seen[-1] == len(model.layers) - 1
    for i, hooks_before in ran:   # a layer runs only after a hook announced it
        assert hooks_before > 0 and seen[hooks_before - 1] >= i
    flushed = []
    model.flush_hook = lambda: flushed.append(1)
    model.load_state_dict(model.state_dict())
    assert len(flushed) >= 2          # each reads flat_params, which completes first
    n = len(flushed)
    model.flat_params
    assert len(flushed) == n + 1


class _FakeOpt:
    """What the exit handler looks at: an exchange with a pending update, and flush()."""
    def __init__(self):
        from types import SimpleNamespace
        self.exchange = SimpleNamespace(pending=True)
        self.flushed = 0

    def flush(self):
        self.flushed += 1


def test_exit_handler_completes_a_pending_update(monkeypatch):
    import sys
    import weakref
    pytest.importorskip("mpi4py.MPI", reason="mpi4py not installed")
    from dtnn.parallel.optimizer import _flush_at_exit
    monkeypatch.delattr(sys, "last_value", raising=False)
    opt = _FakeOpt()
    _flush_at_exit(weakref.ref(opt))
    assert opt.flushed == 1


def test_exit_handler_skips_the_flush_after_an_uncaught_exception(monkeypatch):
    """A program ending with an uncaught exception (sys.last_value is set before atexit
    runs) must not wait for its peers at exit: they may be anywhere."""
    import sys
    import weakref
    from dtnn.parallel.optimizer import _flush_at_exit
    monkeypatch.setattr(sys, "last_value", RuntimeError("boom"), raising=False)
    opt = _FakeOpt()
    _flush_at_exit(weakref.ref(opt))
    assert opt.flushed == 0
