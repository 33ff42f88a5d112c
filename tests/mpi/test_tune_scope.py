"""tune.scope across MPI ranks, with every rank made a host of its own (the simulated
cluster's case): "job" makes all ranks agree on each decision even when their local
timings and their hosts' cached decisions disagree; "node" leaves each host its own."""
import numpy as np
import pytest

from ._helpers import assert_all, assert_same_everywhere

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]


@pytest.fixture(scope="module")
def ctx():
    from dtnn.parallel.mpi import MPIContext
    return MPIContext()


class OneRankPerHost:
    """``ctx`` as if each rank ran on its own host: the node reduction is the rank
    alone, the job reduction is the real one."""

    def __init__(self, ctx):
        self.ctx = ctx

    def node_allreduce(self, values, op="max"):
        return np.asarray(values, np.float64).copy()

    def job_allreduce(self, values, op="max"):
        return self.ctx.job_allreduce(values, op)


def _decide(ctx, scope, cache_dir, monkeypatch):
    """Tune one key with rank-dependent timings: rank 0 sees "a" fastest, the others
    "b"; rank 0's cache (a directory per rank: a host each) holds "a", the others' "b"."""
    import dtnn.tune as T
    monkeypatch.setenv("DTNN_TUNE_CACHE", cache_dir)
    mine = "a" if ctx.rank == 0 else "b"
    T.TuneCache(cache_dir).put("t", "k", {"winner": mine, "stats": {}})
    local = {"a": 1.0, "b": 3.0} if ctx.rank == 0 else {"a": 5.0, "b": 2.0}
    T.configure(T.TuneOptions(rounds=3, warmup=1, prune_ratio=100, scope=scope),
                comm=OneRankPerHost(ctx))
    try:
        bo = T.get_tuner("t", ["a", "b"])
        calls = 0
        while not bo.settled("k") and calls < 100:
            n = bo.choose("k")
            bo.record("k", n, local[n])
            calls += 1
        return bo.winner("k"), bo.state("k").source, calls
    finally:
        T.configure()


def test_job_scope_agrees_over_hosts_and_caches(ctx, tmp_path, monkeypatch):
    winner, source, calls = _decide(ctx, "job", str(tmp_path / f"job{ctx.rank}"),
                                    monkeypatch)
    # the caches disagree, so every rank tunes: MAX over the job makes "a" cost 5
    # and "b" cost 3 -> "b" everywhere
    assert_same_everywhere(winner, "winner")
    assert_same_everywhere(calls, "calls")
    assert_all(winner == "b" and source == "tuned", "tuned b", (winner, source))


def test_node_scope_keeps_each_hosts_choice(ctx, tmp_path, monkeypatch):
    winner, source, _ = _decide(ctx, "node", str(tmp_path / f"node{ctx.rank}"),
                                monkeypatch)
    mine = "a" if ctx.rank == 0 else "b"
    assert_all(winner == mine and source == "cache", "own cache", (winner, source))
