"""The quantised ring's final decode fused into the optimizer's update
(``dist.fuse_update``), any world size >= 2.

Oracle: the same run without it (decode into the flat gradient, then the update).  N
steps give bit-identical parameters, optimizer state, BN buffers, error-feedback
residuals, eval logits and bytes, on every rank, replicas identical: synchronous and
with ``dist.defer_update``, for every qring format the fused kernel takes (int8,
QSGD-8, TernGrad, sign) and for what it must leave alone (allgather, compression
warm-up, Adam: decoded first).  The fused path must really run; the divergence guard
still stops at the same step; ``synchronize()`` shows the averaged gradients."""
import numpy as np
import pytest

from dtnn.parallel import held as H
from dtnn.parallel.mpi import MPIContext

from ._helpers import assert_all, deferred_update_run, gather_params
from .test_compress import _same_tree
from .test_defer_compressed import _run, _until_stopped

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(240, method="thread")]


@pytest.fixture(scope="module")
def ctx():
    return MPIContext()


def _counted(monkeypatch):
    """Count the held buckets the update decodes (HeldDecodes.run)."""
    calls = []
    run = H.HeldDecodes.run

    def counting(self, update, lo, hi, items=None):
        calls.append(hi - lo)
        return run(self, update, lo, hi, items)
    monkeypatch.setattr(H.HeldDecodes, "run", counting)
    return calls


def _same(ctx, a, b, what):
    assert_all(np.array_equal(a["params"], b["params"]), f"{what}: params bit-identical")
    assert_all(_same_tree(a["opt"], b["opt"]), f"{what}: optimizer state")
    assert_all(_same_tree(a["bufs"], b["bufs"]), f"{what}: BN buffers")
    assert_all(_same_tree(a["cx"], b["cx"]), f"{what}: residuals and compressor state")
    assert_all(all(np.array_equal(x, y) for x, y in zip(a["evals"], b["evals"])),
               f"{what}: eval logits between steps")
    assert_all(a["stats"]["sent_bytes"] == b["stats"]["sent_bytes"], f"{what}: bytes")
    params = gather_params(a["model"])
    assert_all(all(np.array_equal(p, params[0]) for p in params), f"{what}: replicas")


FUSED = [("int8", {}), ("qsgd:bits=8", {}), ("terngrad", {}), ("sign", {}),
         ("terngrad:chunk=0", {}), ("terngrad", {"compress_warmup_steps": 2})]


@pytest.mark.parametrize("spec,extra", FUSED)
@pytest.mark.parametrize("defer", [False, True])
def test_fused_equals_unfused_bit_for_bit(ctx, spec, extra, defer, monkeypatch):
    base = {"bucket_mb": 0.0005, "tune": "false", "min_compress_size": 16,
            "compress": spec, "collective": "qring", "defer_update": defer, **extra}
    plain = _run(ctx, dict(base, fuse_update=False))
    calls = _counted(monkeypatch)
    fused = _run(ctx, dict(base, fuse_update=True))
    what = f"{spec} {extra} defer={defer}"
    assert_all(len(calls) > 0, f"{what}: the update decoded the held payloads")
    assert_all(all(fused["pending"]) == defer, f"{what}: deferral unchanged")
    _same(ctx, fused, plain, what)


@pytest.mark.parametrize("spec,extra,opt_name", [("sign", {"collective": "allgather"}, "sgd"),
                                                 ("terngrad", {"collective": "qring"}, "adam")])
def test_what_cannot_fuse_is_unchanged(ctx, spec, extra, opt_name, monkeypatch):
    """allgather holds nothing; Adam (no fused kernel) gets the gradient decoded."""
    base = {"bucket_mb": 0.0005, "tune": "false", "min_compress_size": 16,
            "compress": spec, **extra}
    plain = _run(ctx, dict(base, fuse_update=False), opt_name=opt_name)
    fused = _run(ctx, dict(base, fuse_update=True), opt_name=opt_name)
    _same(ctx, fused, plain, f"{spec} {extra} {opt_name}")


def test_synchronize_shows_the_averaged_gradients(ctx):
    """A loop that looks at the gradients (``synchronize()``) sees the averaged ones, and
    its parameters do not change bit."""
    out = []
    for fuse in (False, True):
        opts = {"bucket_mb": 0.0005, "tune": "false", "min_compress_size": 16,
                "compress": "terngrad", "collective": "qring", "fuse_update": fuse}
        model, opt, loader = deferred_update_run(ctx, "sgd", opts, 4)
        grads = []
        for step, (x, y) in enumerate(loader.epoch(0)):
            if step == 4:
                break
            logits = model.forward(x, training=True)
            opt.loss_fn.forward(logits, y)
            opt.backward(opt.loss_fn.backward())
            if step % 2:
                opt.synchronize()
                grads.append(model.flat_grads.copy())
            opt.step()
        out.append((model.flat_params.copy(), grads))
    assert_all(np.array_equal(out[0][0], out[1][0]), "params")
    assert_all(all(np.array_equal(a, b) for a, b in zip(out[0][1], out[1][1])),
               "averaged gradients after synchronize()")


@pytest.mark.parametrize("defer", [False, True])
def test_guard_stops_at_the_same_step(ctx, defer):
    base = {"bucket_mb": 0.0005, "tune": "false", "min_compress_size": 16,
            "compress": "sign", "collective": "qring", "defer_update": defer}
    seen = []
    plain = _run(ctx, dict(base, fuse_update=False), guard=seen.append)
    fused = _run(ctx, dict(base, fuse_update=True), guard=seen.append)
    _same(ctx, fused, plain, f"guard defer={defer}: finite run")
    want = (2, [True]) if defer else (1, [False])
    stopped, flags, finite = _until_stopped(ctx, dict(base, fuse_update=True), 1)
    assert_all((stopped, flags) == want and finite,
               f"defer={defer}: every rank stops before a non-finite update",
               f"{stopped} {flags} finite={finite}")
