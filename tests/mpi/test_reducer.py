"""GradientReducer: overlap == blocking, any bucket size, statistics, misuse."""
import numpy as np
import pytest

from dtnn.parallel.mpi import MPIContext
from dtnn.layers.loss import SoftmaxCrossEntropy

from ._helpers import (assert_all, conv_net, dataset, dense_net, gather_params,
                       max_rel_diff, train_distributed)

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]


@pytest.fixture(scope="module")
def ctx():
    return MPIContext()


def _run(ctx, options, factory=None, steps=5):
    factory = factory or (lambda s: conv_net(s, bn=True))
    model, _, reducer = train_distributed(ctx, factory, dataset("conv"), 8, steps, "sgd",
                                          options)
    return model, reducer


@pytest.mark.parametrize("mode", ["overlap", "blocking"])
def test_replicas_bit_identical(ctx, mode):
    model, reducer = _run(ctx, {"mode": mode, "check_replicas": True})
    params = gather_params(model)
    assert_all(all(np.array_equal(p, params[0]) for p in params), f"{mode}: bit-identical")
    bufs = ctx.comm.allgather(np.concatenate([b.ravel() for b in model.buffers().values()]))
    assert_all(all(np.array_equal(b, bufs[0]) for b in bufs), f"{mode}: buffers identical")


def test_overlap_equals_blocking(ctx):
    a, _ = _run(ctx, {"mode": "overlap", "bucket_mb": 0})
    b, _ = _run(ctx, {"mode": "blocking"})
    err = max_rel_diff(a.flat_params, b.flat_params)
    assert_all(err <= 1e-6, "overlap == blocking", f"{err:.3g}")


@pytest.mark.parametrize("bucket_mb", [0, 0.0005, 4])
def test_bucket_sizes(ctx, bucket_mb):
    model = conv_net(0, bn=True)
    reducer = ctx.make_reducer(model, {"bucket_mb": bucket_mb})
    spans = reducer.buckets
    assert spans[0][0] == 0 and spans[-1][1] == model.flat_grads.size
    assert all(spans[k][1] == spans[k + 1][0] for k in range(len(spans) - 1))
    with_params = sum(1 for i in range(len(model.layers)) if model.layer_param_range(i)[1] > 0)
    if bucket_mb == 0:
        assert len(spans) == with_params
    if bucket_mb == 4:
        assert len(spans) == 1
    got, _ = _run(ctx, {"bucket_mb": bucket_mb})
    ref, _ = _run(ctx, {"mode": "blocking"})
    err = max_rel_diff(got.flat_params, ref.flat_params)
    assert_all(err <= 1e-6, f"bucket_mb={bucket_mb} == blocking", f"{err:.3g}")


def test_gradients_are_the_average(ctx):
    model = dense_net(0)
    reducer = ctx.make_reducer(model, {"bucket_mb": 0})
    ds = dataset("dense")
    x, y = ds.x[ctx.rank * 4:(ctx.rank + 1) * 4], ds.y[ctx.rank * 4:(ctx.rank + 1) * 4]
    loss = SoftmaxCrossEntropy()
    loss.forward(model.forward(x, training=True), y)
    model.backward(loss.backward())
    mine = model.flat_grads.copy()
    expected = np.mean(ctx.comm.allgather(mine), axis=0)
    loss.forward(model.forward(x, training=True), y)
    reducer.start_step()
    model.backward(loss.backward(), on_grads_ready=reducer.on_grads_ready)
    reducer.finish_step()
    err = max_rel_diff(model.flat_grads, expected)
    assert_all(err < 1e-6, "mean of the ranks' gradients", f"{err:.3g}")


def test_stats(ctx):
    _, reducer = _run(ctx, {"bucket_mb": 0}, steps=4)
    s = reducer.stats()
    ok = (s["steps"] == 4 and s["ranks"] == ctx.size and s["buckets"] >= 2
          and s["payload_bytes"] >= 4 * reducer.grads.size
          and s["step_seconds"] > 0 and s["exposed_comm_seconds"] >= 0
          and s["compute_seconds"] > 0 and s["comm_seconds"] >= 0)
    assert_all(ok, "stats are sane", str(s))
    reducer.reset_stats()
    assert_all(reducer.stats()["steps"] == 0, "reset_stats")


def test_backward_without_hook_is_an_error(ctx):
    model = dense_net(0)
    reducer = ctx.make_reducer(model, {"mode": "overlap"})
    ds = dataset("dense")
    loss = SoftmaxCrossEntropy()
    loss.forward(model.forward(ds.x[:4], training=True), ds.y[:4])
    reducer.start_step()
    model.backward(loss.backward())
    with pytest.raises(RuntimeError, match="on_grads_ready"):
        reducer.finish_step()


def test_check_replicas_names_the_diverged_rank(ctx):
    from dtnn.parallel.reducer import ReplicaMismatchError
    model = dense_net(0)
    reducer = ctx.make_reducer(model)
    ctx.sync_model(model)
    reducer.check_replicas()  # in sync: no error
    if ctx.rank == ctx.size - 1:
        model.flat_params[3] += 1e-6
    with pytest.raises(ReplicaMismatchError) as info:
        reducer.check_replicas()
    assert_all(f"rank(s) {ctx.size - 1} hold" in str(info.value), "names rank", str(info.value))
