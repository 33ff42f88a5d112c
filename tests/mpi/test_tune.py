"""BestOf across MPI ranks: the ranks of a node agree on every decision (timings are
MAX-reduced over the node communicator), even when their local timings disagree."""
import numpy as np
import pytest

from ._helpers import assert_all, assert_same_everywhere, world

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]


@pytest.fixture(scope="module")
def ctx():
    from dtnn.parallel.mpi import MPIContext
    return MPIContext()


@pytest.mark.parametrize("scope", ["node", "job"])
def test_scoped_allreduce(ctx, scope):
    # node: over the ranks of this host (tune.scope = "node"); job: over all of them
    reduce = getattr(ctx, f"{scope}_allreduce")
    me, n = (ctx.local_rank, ctx.local_size) if scope == "node" else (ctx.rank, ctx.size)
    mx = reduce(np.array([me, -me], np.float64), "max")
    assert_all(mx[0] == n - 1 and mx[1] == 0, "max", mx)
    s = reduce(np.ones(3), "sum")
    assert_all(np.all(s == n), "sum", s)


def test_ranks_agree_despite_different_local_timings(ctx):
    from dtnn.tune import BestOf
    # rank 0 sees "a" fastest, the other ranks see "b" fastest: MAX over the node makes
    # "a" cost 5 (from the others) and "b" cost 3 (from rank 0) -> everyone picks "b"
    local = {"a": 1.0, "b": 3.0} if ctx.local_rank == 0 else {"a": 5.0, "b": 2.0}
    bo = BestOf("t", ["a", "b", "c"], rounds=3, warmup=1, comm=ctx, prune_ratio=100,
                gross_ratio=100)
    local["c"] = 4.0 + ctx.local_rank
    steps = 0
    while not bo.settled("k"):
        n = bo.choose("k")
        bo.record("k", n, local[n])
        steps += 1
    assert_same_everywhere(bo.winner("k"), "winner")
    assert_same_everywhere(steps, "steps")
    assert_all(bo.winner("k") == "b", "winner is b", bo.winner("k"))


def test_conv_layers_agree_on_real_timings(ctx, tmp_path_factory):
    import dtnn.tune as T
    from dtnn.layers.conv import Conv2D
    T.configure(T.TuneOptions(rounds=2, warmup=1, use_cache=False), comm=ctx)
    try:
        layer = Conv2D(8, 3, padding=1, algorithm="bestof")
        layer.build((4, 8, 8), np.random.default_rng(0))
        x = np.random.default_rng(1).standard_normal((2, 4, 8, 8)).astype(np.float32)
        for _ in range(40):
            y = layer.forward(x, training=True)
            layer.backward(np.ones_like(y))
        key = layer.algorithm.key(layer.geometry(2), True)
        bo = T.tuners()["conv"]
        assert_all(bo.settled(key), "settled")
        assert_same_everywhere(bo.winner(key), "conv winner")
        assert_same_everywhere(T.tuners()["winograd_tile"].winner(key), "tile winner")
    finally:
        T.configure()


def test_inference_tuning_is_rank_local(ctx):
    """Evaluation shards differ between ranks (batch counts and sizes): inference
    tuning must not issue node collectives, or the uneven ranks would hang."""
    import dtnn.tune as T
    from dtnn.layers.conv import Conv2D
    T.configure(T.TuneOptions(rounds=1, warmup=0, use_cache=False), comm=ctx)
    try:
        layer = Conv2D(4, 3, padding=1, algorithm="bestof")
        layer.build((2, 6, 6), np.random.default_rng(0))
        calls = 12 + 7 * ctx.rank                  # uneven on purpose
        for i in range(calls):
            n = 1 + (i % (2 + ctx.rank))           # different batch sizes per rank
            layer.forward(np.ones((n, 2, 6, 6), np.float32), training=False)
        assert_all(T.tuners()["conv_infer"].comm is None, "conv_infer is local")
        world().Barrier()
    finally:
        T.configure()
