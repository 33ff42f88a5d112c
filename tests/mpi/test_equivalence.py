"""N ranks x batch B == 1 process x batch N*B (same sample order), step for step.

The serial reference is computed redundantly on every rank in the same process.
BatchNorm: each rank normalises with its own shard's statistics, so a BN model is
compared against a reference that does the same per shard (``per_shard_bn``).
Dropout: ranks draw different masks by design, so exact equivalence is checked with
rate 0; with dropout on, the replicas must still stay bit-identical.
"""
import numpy as np
import pytest

from dtnn.parallel.mpi import MPIContext

from ._helpers import (assert_all, conv_net, dataset, dense_net, gather_params,
                       max_rel_diff, train_distributed, train_reference)

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]

STEPS = 6
BATCH = 8
TOL = 1e-5


@pytest.fixture(scope="module")
def ctx():
    return MPIContext()


def _check(ctx, factory, kind, opt, per_shard_bn=False, options=None):
    ds = dataset(kind)
    model, _, reducer = train_distributed(ctx, factory, ds, BATCH, STEPS, opt, options)
    ref = train_reference(factory, ds, BATCH, ctx.size, STEPS, opt, per_shard_bn=per_shard_bn)
    moved = max_rel_diff(model.flat_params, factory(100).flat_params)
    assert_all(moved > 1e-3, "training changed the parameters", f"{moved:g}")
    err = max_rel_diff(model.flat_params, ref.flat_params)
    assert_all(err < TOL, f"{opt} params equal the 1-process reference", f"rel diff {err:.3g}")
    for key, buf in model.buffers().items():
        berr = max_rel_diff(buf, ref.buffers()[key])
        assert_all(berr < TOL, f"buffer {key} equals the reference", f"rel diff {berr:.3g}")
    params = gather_params(model)
    assert_all(all(np.array_equal(p, params[0]) for p in params), "replicas bit-identical")
    reducer.check_replicas()
    return reducer


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_dense_matches_big_batch(ctx, opt):
    _check(ctx, dense_net, "dense", opt)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_dense_dropout_rate0_matches_big_batch(ctx, opt):
    _check(ctx, lambda s: dense_net(s, dropout=0.0), "dense", opt)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_batchnorm_conv_matches_per_shard_reference(ctx, opt):
    _check(ctx, lambda s: conv_net(s, bn=True), "conv", opt, per_shard_bn=True)


def test_batchnorm_dense_matches_per_shard_reference(ctx):
    _check(ctx, lambda s: dense_net(s, bn=True), "dense", "sgd", per_shard_bn=True,
           options={"mode": "blocking"})


def test_conv_without_bn_matches_big_batch(ctx):
    _check(ctx, lambda s: conv_net(s, bn=False), "conv", "sgd")


def test_dropout_on_replicas_stay_identical(ctx):
    ds = dataset("dense")
    model, _, reducer = train_distributed(ctx, lambda s: dense_net(s, dropout=0.5), ds,
                                          BATCH, STEPS, "sgd", {"check_replicas": True})
    params = gather_params(model)
    assert_all(all(np.array_equal(p, params[0]) for p in params), "replicas bit-identical")
    assert_all(reducer.stats()["steps"] == STEPS, "steps counted")
