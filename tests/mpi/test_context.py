"""MPIContext basics: ranks, communicators, reductions, start-up checks, sync."""
import numpy as np
import pytest

from dtnn.errors import UserError
from ._helpers import assert_all, assert_same_everywhere, dense_net, world

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]


@pytest.fixture(scope="module")
def ctx():
    from dtnn.parallel.mpi import MPIContext
    return MPIContext()


def test_get_context_returns_mpi_context():
    from dtnn.parallel import get_context
    from dtnn.parallel.mpi import MPIContext
    c = get_context()
    assert_all(isinstance(c, MPIContext), "get_context() type", type(c).__name__)
    assert_all(c.size == world().size and c.rank == world().rank, "rank/size")


def test_ranks_and_local_sizes(ctx):
    comm = world()
    assert_all(ctx.rank == comm.rank and ctx.size == comm.size, "rank/size")
    assert_all(ctx.comm != comm, "library communicator is a clone")
    # all test processes run on this host
    hosts = comm.allgather(ctx.host)
    on_my_host = hosts.count(ctx.host)
    assert_all(ctx.local_size == on_my_host, "local_size", f"{ctx.local_size} vs {on_my_host}")
    assert_all(0 <= ctx.local_rank < ctx.local_size, "local_rank")
    assert_same_everywhere(ctx.num_nodes, "num_nodes")
    assert_all(ctx.num_nodes == len(set(hosts)), "num_nodes counts hosts")
    assert_all((ctx.leader_comm is not None) == (ctx.local_rank == 0), "leader_comm")


def test_allreduce_sum_and_broadcast(ctx):
    v = np.array([ctx.rank, 1.0, 2.5], np.float64)
    total = ctx.allreduce_sum(v)
    n = ctx.size
    assert_all(np.array_equal(total, [n * (n - 1) / 2, n, 2.5 * n]), "allreduce_sum", str(total))
    assert_all(np.array_equal(v, [ctx.rank, 1.0, 2.5]), "allreduce_sum leaves input alone")
    cm = np.full((3, 3), ctx.rank + 1, np.int64)
    assert_all(ctx.allreduce_sum(cm).dtype == np.int64, "integer sums stay integer")
    obj = ctx.broadcast_object({"rank": ctx.rank})
    assert_all(obj == {"rank": 0}, "broadcast_object")


def test_model_mismatch_names_the_rank(ctx):
    model = dense_net(0, bn=(ctx.rank == ctx.size - 1))  # the last rank differs
    with pytest.raises(UserError) as info:
        ctx.check_consistency(model)
    msg = str(info.value)
    assert_all(f"rank(s) {ctx.size - 1} differ" in msg, "message names the rank", msg)


def test_sync_model_broadcasts_params_buffers_and_optimizer(ctx):
    from dtnn.optim import build_optimizer
    model = dense_net(seed=ctx.rank, bn=True)
    for name, buf in model.buffers().items():
        buf[...] = ctx.rank + 0.5
    opt = build_optimizer("adam", model, lr=0.01)
    model.flat_grads[...] = ctx.rank + 1.0
    opt.step()  # state differs per rank
    ctx.sync_model(model, opt)
    params = world().allgather(model.flat_params.copy())
    assert_all(all(np.array_equal(p, params[0]) for p in params), "params equal")
    bufs = world().allgather({k: v.copy() for k, v in model.buffers().items()})
    assert_all(all(np.all(v == 0.5) for v in bufs[ctx.rank].values()), "buffers from rank 0")
    state = opt.state_dict()
    states = world().allgather(state)
    for key, value in states[0].items():
        mine = state[key]
        same = np.array_equal(mine, value) if isinstance(value, np.ndarray) else mine == value
        assert_all(same, f"optimizer state {key}")


def test_dropout_streams_differ_across_ranks(ctx):
    model = dense_net(seed=0, dropout=0.5)
    ctx.make_reducer(model)
    h = model.layers[2].forward(np.ones((8, 24), np.float32), training=True)
    masks = world().allgather(h.copy())
    distinct = len({m.tobytes() for m in masks})
    assert_all(distinct == ctx.size, "each rank draws its own dropout mask", str(distinct))


def test_mpi_context_implements_the_context_protocol(ctx):
    from dtnn.parallel.context import Context
    assert_all(isinstance(ctx, Context), "MPIContext is a Context")


def test_allreduce_sum_waits_through_the_exchanges_wait_policy(ctx, monkeypatch):
    """The metrics / guard allreduce is posted non-blocking and finished by
    collectives.wait (MPICH's blocking allreduce spins on shared cores)."""
    from dtnn.parallel.collectives import base
    seen = []
    real = base.wait

    def recording(ops, on_idle=None):
        seen.append([type(op).__name__ for op in ops])
        return real(ops, on_idle)

    monkeypatch.setattr(base, "wait", recording)
    for dtype in (np.float64, np.int64):
        total = ctx.allreduce_sum(np.arange(5, dtype=dtype) + ctx.rank)
        want = ctx.size * np.arange(5) + ctx.size * (ctx.size - 1) // 2
        assert_all(np.array_equal(total, want) and total.dtype == dtype,
                   "allreduce_sum through wait", str(total))
    assert_all(seen == [["ReqOp"], ["ReqOp"]], "one ReqOp per allreduce_sum", str(seen))
