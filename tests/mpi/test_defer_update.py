"""The deferred update (dist.defer_update, #17) under MPI, any world size >= 2: each
bucket's exchange stays in flight after ``step()`` and its parameters are updated when
the next forward reaches them.  The oracle is the synchronous step: N steps with and
without deferral give bit-identical parameters, optimizer state and BN buffers, on every
rank, with an LR schedule, Adam's bias correction, an eval pass and a state_dict in the
middle; paths that cannot defer (clipping) fall back to the same bits.  Compressed
exchanges: tests/mpi/test_defer_compressed.py."""
import numpy as np
import pytest

from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.parallel.mpi import MPIContext

from ._helpers import assert_all, deferred_update_run, gather_params

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(180, method="thread")]

STEPS = 6


@pytest.fixture(scope="module")
def ctx():
    return MPIContext()


def _run(ctx, opt_name, options, *, manual=False, clip=0.0, probe=None):
    model, opt, loader = deferred_update_run(ctx, opt_name, options, STEPS)
    opt.clip_grad_norm = clip
    loss_fn = SoftmaxCrossEntropy()
    evals, pending = [], []
    for step, (x, y) in enumerate(loader.epoch(0)):
        if step == STEPS:
            break
        if manual:
            loss_fn.forward(model.forward(x, training=True), y)
            model.backward(loss_fn.backward())
            opt.step()
        else:
            opt.step(model, x, y)
        pending.append(opt.exchange.pending)
        if step == 2:   # an eval forward between steps reads updated parameters
            evals.append(model.forward(x, training=False).copy())
        if step == 3:   # so does a state_dict (collective)
            evals.append(opt.state_dict()["optimizer"]["steps"])
    opt.flush()
    state = opt.optimizer.state_dict()
    bufs = {k: v.copy() for k, v in model.buffers().items()}
    return model, state, bufs, evals, pending


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
@pytest.mark.parametrize("algorithm", ["ring", "mpi"])
def test_deferred_equals_synchronous_bit_for_bit(ctx, opt_name, algorithm):
    base = {"bucket_mb": 0.0005, "algorithm": algorithm, "tune": "false"}
    sync = _run(ctx, opt_name, dict(base, defer_update=False))
    for manual in (False, True):
        dfr = _run(ctx, opt_name, dict(base, defer_update=True), manual=manual)
        assert_all(all(dfr[4]) and not any(sync[4]), "deferred steps leave buckets pending",
                   f"{dfr[4]} / {sync[4]}")
        assert_all(np.array_equal(dfr[0].flat_params, sync[0].flat_params),
                   f"{opt_name} {algorithm} manual={manual}: params bit-identical")
        assert_all(_same(dfr[1], sync[1]), "optimizer state bit-identical")
        assert_all(_same(dfr[2], sync[2]), "BN buffers bit-identical")
        assert_all(_same(dfr[3], sync[3]), "eval logits and state_dict between steps")
        params = gather_params(dfr[0])
        assert_all(all(np.array_equal(p, params[0]) for p in params), "replicas identical")


@pytest.mark.parametrize("extra", [{"clip": 1e-3}, {"clip": 1e-3, "compress": "topk:ratio=0.1"}])
def test_paths_that_cannot_defer_fall_back_to_the_same_bits(ctx, extra):
    clip = extra.pop("clip", 0.0)
    base = {"bucket_mb": 0.0005, "tune": "false", "min_compress_size": 16, **extra}
    sync = _run(ctx, "sgd", dict(base, defer_update=False), clip=clip)
    dfr = _run(ctx, "sgd", dict(base, defer_update=True), clip=clip)
    assert_all(not any(dfr[4]), "nothing left pending", str(dfr[4]))
    assert_all(np.array_equal(dfr[0].flat_params, sync[0].flat_params), "same bits")
