"""BestOf: deterministic tests with fake alternatives and a fake clock (no sleeping,
no wall-clock assertions)."""
import json

import numpy as np
import pytest

from dtnn.tune import BestOf, TuneCache, TuneOptions
from dtnn.tune.report import format_report, write_report


class FakeClock:
    """Time advances only when a fake alternative 'runs'."""
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def make(costs, clock, **kw):
    calls = {n: 0 for n in costs}

    def alt(name):
        def f(x):
            calls[name] += 1
            c = costs[name]
            clock.t += c(calls[name]) if callable(c) else c
            return (name, x)
        return f
    bo = BestOf("t", {n: alt(n) for n in costs}, clock=clock, **kw)
    return bo, calls


def test_picks_fastest_and_then_dispatches_directly():
    clock = FakeClock()
    bo, calls = make({"a": 3.0, "b": 1.0, "c": 2.0}, clock, rounds=3, warmup=1,
                     prune_ratio=10, gross_ratio=10)
    n = 0
    while not bo.settled("k"):
        assert bo("k", n)[1] == n     # results pass through
        n += 1
    assert bo.winner("k") == "b"
    assert n == 3 * (1 + 3)           # round-robin: warm-up + 3 rounds each
    before = dict(calls)
    for i in range(10):
        assert bo("k", i) == ("b", i)
    assert calls["b"] == before["b"] + 10 and calls["a"] == before["a"]
    row = bo.report()[0]
    assert row["winner"] == "b" and row["source"] == "tuned"
    assert row["speedup_vs_default"] == pytest.approx(3.0)   # default = first = "a"
    # tuning cost = time beyond what the winner would have taken for the same calls
    assert row["tuning_cost_seconds"] == pytest.approx(4 * 3.0 + 4 * 2.0 - 8 * 1.0)


def test_round_robin_order_is_deterministic():
    clock = FakeClock()
    bo, _ = make({"a": 1.0, "b": 2.0}, clock, rounds=2, warmup=1)
    seq = []
    while not bo.settled("k"):
        name = bo.choose("k")
        seq.append(name)
        bo.record("k", name, {"a": 1.0, "b": 2.0}[name])
    assert seq == ["a", "b", "a", "b", "a", "b"]


def test_median_ignores_outliers():
    clock = FakeClock()
    # "a" is usually fastest but has one huge outlier (page faults, a noisy neighbour)
    bo, _ = make({"a": lambda i: 50.0 if i == 3 else 1.0, "b": 1.5}, clock, rounds=5,
                 warmup=1, prune_ratio=100, gross_ratio=100)
    while not bo.settled("k"):
        bo("k", 0)
    assert bo.winner("k") == "a"


def test_prunes_clear_losers_early():
    clock = FakeClock()
    bo, calls = make({"fast": 1.0, "slow": 10.0, "ok": 1.2}, clock, rounds=6, warmup=1,
                     prune_after=2, prune_ratio=1.5, gross_ratio=4.0)
    while not bo.settled("k"):
        bo("k", 0)
    assert bo.winner("k") == "fast"
    assert calls["slow"] == 1                  # dropped after the warm-up round (gross)
    assert calls["ok"] == 7 and calls["fast"] == 7
    assert bo.report()[0]["pruned"] == {"slow": 0}


def test_per_key_states_are_independent():
    clock = FakeClock()
    costs = {"a": lambda i: 1.0, "b": lambda i: 2.0}
    bo = BestOf("t", ["a", "b"], clock=clock, rounds=2, warmup=0)
    for key, cost in (("small", {"a": 1.0, "b": 2.0}), ("big", {"a": 5.0, "b": 2.0})):
        while not bo.settled(key):
            n = bo.choose(key)
            bo.record(key, n, cost[n])
    assert bo.winner("small") == "a" and bo.winner("big") == "b"
    del costs


def test_candidates_and_force():
    bo = BestOf("t", ["a", "b", "c"], candidates=lambda k: ["a", "c"] if k == 1 else ["b"])
    assert bo.choose(2) == "b" and bo.settled(2) and bo.state(2).source == "only"
    assert bo.choose(1) in ("a", "c")
    forced = BestOf("t", ["a", "b", "c"], force="c")
    assert forced.choose("x") == "c" and forced.state("x").source == "forced"
    with pytest.raises(ValueError):
        BestOf("t", ["a"], force="zzz")


def test_nested_choice_settles_before_parent_compares():
    """The parent only counts samples of an alternative whose inner choice settled."""
    inner = BestOf("inner", ["i1", "i2"], rounds=2, warmup=0)
    parent = BestOf("outer", ["x", "nested"], rounds=2, warmup=0,
                    inner_settled=lambda name, key: name != "nested" or inner.settled(key))
    icost = {"i1": 3.0, "i2": 0.5}
    counted_unsettled = 0
    steps = 0
    while not parent.settled("k"):
        name = parent.choose("k")
        if name == "nested":
            iname = inner.choose("k")
            was_settled = inner.settled("k")
            inner.record("k", iname, icost[iname])
            t = icost[iname]
            before = len(parent.state("k").samples["nested"])
            parent.record("k", name, t)
            if not was_settled and len(parent.state("k").samples["nested"]) > before:
                counted_unsettled += 1
        else:
            parent.record("k", name, 1.0)
        steps += 1
        assert steps < 100
    assert inner.winner("k") == "i2"
    assert parent.winner("k") == "nested"      # judged on the inner winner's time
    assert parent.state("k").discarded >= 1
    # every counted "nested" sample used the settled inner winner
    assert all(s == 0.5 for s in parent.state("k").samples["nested"])


class FakeNodeComm:
    """Emulates the other rank of the node: its timings are `peer` for each
    alternative in order (MAX reduction, like MPIContext.node_allreduce)."""
    def __init__(self, peer_fn):
        self.peer_fn = peer_fn
        self.calls = 0

    def node_allreduce(self, values, op="max"):
        self.calls += 1
        assert op == "max"
        return np.maximum(values, self.peer_fn(values))


def test_node_reduction_decides_on_slowest_rank():
    # locally "a" looks fastest, but on the other rank of the node "a" is very slow
    # (a round reduces the alternatives' statistics followed by the tuning cost spent)
    comm = FakeNodeComm(lambda v: np.concatenate([[9.0, 2.0], v[2:]])
                        if len(v) == 3 and v[0] > 0 and v[1] > 0 else v)
    bo = BestOf("t", ["a", "b"], rounds=2, warmup=0, comm=comm, prune_ratio=100,
                gross_ratio=100)
    while not bo.settled("k"):
        n = bo.choose("k")
        bo.record("k", n, {"a": 1.0, "b": 1.5}[n])
    assert bo.winner("k") == "b"
    assert comm.calls >= 2
    assert bo.report()[0]["stats"] == {"a": 9.0, "b": 2.0}


def test_disk_cache_roundtrip(tmp_path):
    cache = TuneCache(str(tmp_path))
    bo = BestOf("t", ["a", "b"], rounds=1, warmup=0, cache=cache)
    while not bo.settled(("g", 4)):
        n = bo.choose(("g", 4))
        bo.record(("g", 4), n, {"a": 2.0, "b": 1.0}[n])
    data = json.load(open(cache.path))
    assert data["t::g|4"]["winner"] == "b"
    # a later run: decided from the cache without any timed call
    bo2 = BestOf("t", ["a", "b"], cache=TuneCache(str(tmp_path)))
    assert bo2.settled(("g", 4)) and bo2.choose(("g", 4)) == "b"
    assert bo2.state(("g", 4)).source == "cache"
    # an entry naming an alternative that no longer exists is ignored
    bo3 = BestOf("t", ["a", "c"], cache=TuneCache(str(tmp_path)))
    assert not bo3.settled(("g", 4))


def test_cache_dir_env_override(tmp_path, monkeypatch):
    from dtnn.tune.cache import default_cache_dir
    monkeypatch.setenv("DTNN_TUNE_CACHE", str(tmp_path / "x"))
    assert default_cache_dir("ignored") == str(tmp_path / "x")
    monkeypatch.delenv("DTNN_TUNE_CACHE")
    assert default_cache_dir(str(tmp_path / "y")) == str(tmp_path / "y")
    assert default_cache_dir().endswith("dtnn/tune")


def test_report_files(tmp_path):
    bo = BestOf("t", ["a", "b"], rounds=1, warmup=0)
    for _ in range(2):
        n = bo.choose("k", label="layer1")
        bo.record("k", n, {"a": 2.0, "b": 1.0}[n])
    rows = bo.report()
    write_report(str(tmp_path), rows)
    back = json.load(open(tmp_path / "tuning.json"))
    assert back[0]["winner"] == "b" and back[0]["labels"] == ["layer1"]
    text = (tmp_path / "tuning.txt").read_text()
    assert "layer1" in text and "2.00x" in text
    assert "no tuning" in format_report([])


def test_global_registry_options(tmp_path, monkeypatch):
    import dtnn.tune as T
    monkeypatch.setenv("DTNN_TUNE_CACHE", str(tmp_path))
    try:
        T.configure(TuneOptions(rounds=7, force={"x": "b"}))
        bo = T.get_tuner("x", ["a", "b"])
        assert bo.rounds == 7 and T.get_tuner("x", ["a", "b"]) is bo
        assert bo.choose("k") == "b"
        assert T.collect()[0]["source"] == "forced"
    finally:
        T.configure()


def test_transpose_choice_is_tuned_generically(tmp_path, monkeypatch):
    import dtnn.tune as T
    from dtnn.conv.layout import swap01_into
    monkeypatch.setenv("DTNN_TUNE_CACHE", str(tmp_path))
    T.configure(TuneOptions(rounds=2, warmup=1))
    try:
        src = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
        for _ in range(8):
            out = np.empty((3, 2, 4), np.float32)
            swap01_into(src, out)
            np.testing.assert_array_equal(out, src.transpose(1, 0, 2))
        bo = T.tuners()["transpose"]
        assert bo.winner(((2, 3, 4), T.current_threads())) in ("numpy", "omp")
    finally:
        T.configure()
