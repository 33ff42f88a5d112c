"""``DistributedOptimizer`` under MPI: its two ways of stepping equal the reducer
driven by hand, replicas stay identical, its state covers every rank's compressor."""
import numpy as np
import pytest

from dtnn.data import BatchLoader
from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.optim import SGD
from dtnn.parallel import DistributedOptimizer
from dtnn.parallel.mpi import MPIContext

from ._helpers import (OPTIMIZERS, assert_all, conv_net, dataset, gather_params, max_rel_diff,
                       train_distributed)

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]

STEPS = 5


@pytest.fixture(scope="module")
def ctx():
    return MPIContext()


def _train(ctx, options, manual: bool):
    """Same data order and start as ``train_distributed`` (rank seeds differ: the
    constructor's broadcast must fix that)."""
    model = conv_net(ctx.rank + 100, bn=True)
    opt = DistributedOptimizer(SGD(model, **OPTIMIZERS["sgd"]), ctx=ctx, options=options)
    loss_fn = SoftmaxCrossEntropy()
    loader = BatchLoader(dataset("conv"), 8, shuffle=True, seed=7, rank=ctx.rank,
                         world_size=ctx.size)
    for step, (x, y) in enumerate(loader.epoch(0)):
        if step == STEPS:
            break
        if manual:
            loss_fn.forward(model.forward(x, training=True), y)
            model.backward(loss_fn.backward())   # plain backward: the hook exchanges
            opt.step()
        else:
            opt.step(model, x, y)
    return model, opt


@pytest.mark.parametrize("options", [{"mode": "overlap", "bucket_mb": 0}, {"mode": "blocking"},
                                     {"compress": "topk:ratio=0.1", "min_compress_size": 16}])
def test_both_ways_of_stepping_equal_the_hand_driven_reducer(ctx, options):
    ref, _, _ = train_distributed(ctx, lambda s: conv_net(s, bn=True), dataset("conv"), 8,
                                  STEPS, "sgd", dict(options))
    for manual in (False, True):
        model, _ = _train(ctx, dict(options), manual)
        err = max_rel_diff(model.flat_params, ref.flat_params)
        assert_all(np.array_equal(model.flat_params, ref.flat_params),
                   f"{options} manual={manual}: equals the reducer loop", f"{err:.3g}")
        params = gather_params(model)
        assert_all(all(np.array_equal(p, params[0]) for p in params), "replicas identical")


def test_state_dict_covers_optimizer_and_every_ranks_compressor(ctx):
    model, opt = _train(ctx, {"compress": "topk:ratio=0.1", "min_compress_size": 16}, False)
    state = opt.state_dict()   # collective
    assert_all("momentum_buffer" in state["optimizer"], "optimizer state")
    if ctx.rank == 0:
        comp = state["compressor"]
        assert comp["world_size"] == ctx.size and f"rank{ctx.size - 1}" in comp
    state = ctx.broadcast_object(state)
    fresh = DistributedOptimizer(SGD(conv_net(0, bn=True), **OPTIMIZERS["sgd"]), ctx=ctx,
                                 compress="topk:ratio=0.1", options={"min_compress_size": 16})
    fresh.load_state_dict(state)
    assert_all(fresh.exchange.steps_done == STEPS, "compressor step counter restored")
    assert_all(np.array_equal(fresh.optimizer.momentum_buffer, opt.optimizer.momentum_buffer),
               "momentum restored")
