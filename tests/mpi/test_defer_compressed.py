"""The deferred update (dist.defer_update) with compressed exchanges, any world size >= 2.

Each bucket's compressed ops (encode with error feedback, the transport's hops, the
final decode of the average) stay in flight after ``step()`` and complete when the next
forward reaches the layers that read them.  Oracle: the synchronous step.  N steps both
ways give bit-identical parameters, optimizer state, BN buffers, error-feedback
residuals and compressor state (PowerSGD's Q), on every rank, with replicas identical,
for summable (random-k, PowerSGD's pipelined rounds), quantised (int8, QSGD, TernGrad,
sign: qring and allgather) and sparse (top-k) payloads.  The divergence guard's check
runs per bucket before that bucket's update."""
import numpy as np
import pytest

from dtnn.data import BatchLoader
from dtnn.optim import build_optimizer
from dtnn.parallel import DistributedOptimizer
from dtnn.parallel.mpi import MPIContext

from ._helpers import (OPTIMIZERS, assert_all, conv_net, dataset, deferred_update_run,
                       gather_params)
from .test_compress import _same_tree

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(180, method="thread")]

STEPS = 6


@pytest.fixture(scope="module")
def ctx():
    return MPIContext()


def _run(ctx, options, *, opt_name="sgd", guard=None):
    """STEPS steps; an eval forward after step 2 and a (collective) state_dict after
    step 3 read the updated parameters in between.  ``guard``: an ``on_grad_norm``
    checked per bucket."""
    model, opt, loader = deferred_update_run(ctx, opt_name, options, STEPS)
    if guard is not None:
        opt.on_grad_norm, opt.grad_check_per_bucket = guard, True
    evals, pending = [], []
    for step, (x, y) in enumerate(loader.epoch(0)):
        if step == STEPS:
            break
        with np.errstate(all="ignore"):
            opt.step(model, x, y)
        pending.append(opt.exchange.pending)
        if step == 2:
            evals.append(model.forward(x, training=False).copy())
        if step == 3:
            evals.append(opt.state_dict()["optimizer"]["steps"])
    opt.flush()
    return dict(params=model.flat_params.copy(), opt=opt.optimizer.state_dict(),
                bufs={k: v.copy() for k, v in model.buffers().items()},
                cx=opt.exchange.state_dict(gather=False), evals=evals, pending=pending,
                stats=opt.exchange.stats(), buckets=len(opt.exchange.buckets), model=model)


CASES = [("randomk:ratio=0.25", {}), ("powersgd:rank=1", {}),
         ("int8", {"collective": "qring"}), ("terngrad", {"collective": "qring"}),
         ("sign", {"collective": "qring"}), ("qsgd:bits=4", {}), ("sign", {}),
         ("topk:ratio=0.1", {}), ("terngrad", {"compress_warmup_steps": 2})]


@pytest.mark.parametrize("spec,extra", CASES)
def test_deferred_compressed_equals_synchronous_bit_for_bit(ctx, spec, extra):
    base = {"bucket_mb": 0.0005, "tune": "false", "min_compress_size": 16,
            "compress": spec, **extra}
    sync = _run(ctx, dict(base, defer_update=False))
    dfr = _run(ctx, dict(base, defer_update=True))
    what = f"{spec} {extra}"
    assert_all(all(dfr["pending"]) and not any(sync["pending"]),
               f"{what}: deferred steps leave buckets pending",
               f"{dfr['pending']} / {sync['pending']}")
    assert_all(np.array_equal(dfr["params"], sync["params"]), f"{what}: params bit-identical")
    assert_all(_same_tree(dfr["opt"], sync["opt"]), f"{what}: optimizer state")
    assert_all(_same_tree(dfr["bufs"], sync["bufs"]), f"{what}: BN buffers")
    assert_all(_same_tree(dfr["cx"], sync["cx"]),
               f"{what}: error-feedback residuals and compressor state")
    assert_all(all(np.array_equal(a, b) for a, b in zip(dfr["evals"], sync["evals"])),
               f"{what}: eval logits and state_dict between steps")
    assert_all(dfr["stats"]["sent_bytes"] == sync["stats"]["sent_bytes"], f"{what}: bytes")
    params = gather_params(dfr["model"])
    assert_all(all(np.array_equal(p, params[0]) for p in params), f"{what}: replicas")
    waits = dfr["stats"]["deferred_waits"]
    assert_all(len(waits) == dfr["buckets"], f"{what}: a deferred wait per bucket",
               str(waits))


def test_blocking_rounds_reference_steps_synchronously(ctx, monkeypatch):
    monkeypatch.setenv("DTNN_CX_ROUNDS", "blocking")
    base = {"bucket_mb": 0.0005, "tune": "false", "min_compress_size": 16,
            "compress": "powersgd:rank=1"}
    sync = _run(ctx, dict(base, defer_update=False))
    dfr = _run(ctx, dict(base, defer_update=True))
    assert_all(not any(dfr["pending"]), "blocking rounds: nothing left pending",
               str(dfr["pending"]))
    assert_all(np.array_equal(dfr["params"], sync["params"]), "same bits")


def _until_stopped(ctx, options, poison: int):
    """Steps until the guard (``on_grad_norm`` checked per bucket) raises; rank 0's
    batch of step ``poison`` is NaN.  Returns (step stopped at, ``deferred_check`` when
    the guard raised, parameters all finite)."""
    model = conv_net(ctx.rank + 100, bn=True)
    opt = DistributedOptimizer(build_optimizer("sgd", model, **OPTIMIZERS["sgd"]),
                               ctx=ctx, options=options)
    flags = []

    def guard(norm):
        if not np.isfinite(norm):
            flags.append(opt.deferred_check)
            raise FloatingPointError(norm)

    opt.on_grad_norm, opt.grad_check_per_bucket = guard, True
    loader = BatchLoader(dataset("conv"), 8, shuffle=True, seed=7, rank=ctx.rank,
                         world_size=ctx.size)
    stopped = None
    for step, (x, y) in enumerate(loader.epoch(0)):
        if step == poison + 3:
            break
        if step == poison and ctx.rank == 0:
            x = np.full_like(x, np.nan)
        try:
            with np.errstate(all="ignore"):
                opt.step(model, x, y)
        except FloatingPointError:
            stopped = step
            break
    # complete what the stop left in flight (every rank alike), updating nothing
    opt.exchange._on_bucket = None
    opt.close()
    finite = bool(np.isfinite(model.flat_params).all())
    return stopped, flags, finite


@pytest.mark.parametrize("spec", ["none", "randomk:ratio=0.25", "sign"])
def test_guard_checks_each_bucket_before_its_update(ctx, spec):
    base = {"bucket_mb": 0.0005, "tune": "false", "min_compress_size": 16,
            "compress": spec}
    seen = []
    sync = _run(ctx, dict(base, defer_update=False), guard=seen.append)
    dfr = _run(ctx, dict(base, defer_update=True), guard=seen.append)
    assert_all(all(dfr["pending"]) and not any(sync["pending"]),
               f"{spec}: the guard no longer forces a synchronous step", str(dfr["pending"]))
    assert_all(np.array_equal(dfr["params"], sync["params"]), f"{spec}: finite run, same bits")
    # a NaN batch on rank 0 at step 1: the synchronous step stops in step(), the
    # deferred one in the next forward, before the bad bucket's update, on every rank
    for defer, want in ((False, (1, [False])), (True, (2, [True]))):
        stopped, flags, finite = _until_stopped(ctx, dict(base, defer_update=defer), 1)
        assert_all((stopped, flags) == want and finite,
                   f"{spec} defer={defer}: every rank stops, no non-finite update",
                   f"{stopped} {flags} finite={finite}")
