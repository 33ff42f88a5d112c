"""What makes ``bestof`` safe as the default: the accuracy screen (variants too
inaccurate on a layer's data are excluded, node-wide), the tuning budget (bounded
cost, decisions taken on what was measured and not cached), the candidate list and
the ISA level in the key."""
import numpy as np
import pytest

import dtnn.tune as T
from dtnn._kernels import isa
from dtnn.config import TuneConfig
from dtnn.conv import CONV_ALGORITHMS, ConvGeometry
from dtnn.conv.bestof import CANDIDATES, BestOfConv
from dtnn.conv.im2col import Im2ColConv
from dtnn.conv.screen import errors, reference
from dtnn.errors import ConfigError
from dtnn.tune import BestOf, TuningBudget
from dtnn.tune.report import format_report, summary


@CONV_ALGORITHMS.register("test_noisy")
class NoisyConv(Im2ColConv):
    """im2col plus relative noise of 1e-3: a variant that is fast but wrong."""
    fused = False

    def forward(self, x, w, b, g):
        y = super().forward(x, w, b, g)
        return y + 1e-3 * np.abs(y).mean() * np.random.default_rng(1).standard_normal(
            y.shape).astype(np.float32)


@CONV_ALGORITHMS.register("test_broken")
class BrokenConv(Im2ColConv):
    def forward(self, x, w, b, g):
        raise RuntimeError("not on this shape")


@pytest.fixture(autouse=True)
def fresh_tuners(tmp_path, monkeypatch):
    monkeypatch.setenv("DTNN_TUNE_CACHE", str(tmp_path / "tune"))
    T.configure(T.TuneOptions(rounds=2, warmup=1))
    yield
    T.configure()


def _run(alg, g, steps=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((g.N, g.C, g.H, g.W)).astype(np.float32)
    w = rng.standard_normal((g.K, g.C // g.groups, g.R, g.S)).astype(np.float32)
    b = rng.standard_normal(g.K).astype(np.float32)
    alg.training = True
    key = alg.key(g, True)
    for _ in range(steps):
        y = alg.forward(x, w, b, g)
        alg.backward(np.ones_like(y), x, w, g, True, np.empty_like(w), np.empty_like(b))
        if alg.tuner().settled(key):
            break
    return alg.tuner().state(key)


def test_reference_matches_im2col():
    g = ConvGeometry(2, 6, 7, 6, 4, 3, 2, (2, 1), (1, 0), (1, 2), 2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 7, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    ho, wo = g.out_hw
    dy = rng.standard_normal((2, 4, ho, wo)).astype(np.float32)
    y, dx, dw = reference(x, w, None, g, dy)
    alg = Im2ColConv()
    np.testing.assert_allclose(alg.forward(x, w, None, g), y, rtol=1e-4, atol=1e-4)
    dw32 = np.empty_like(w)
    np.testing.assert_allclose(alg.backward(dy, x, w, g, True, dw32, None), dx, rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(dw32, dw, rtol=1e-4, atol=1e-4)


def test_screen_measures_every_candidate():
    g = ConvGeometry(4, 8, 10, 10, 16, 3, 3, padding=(1, 1))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 10, 10)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    errs = errors(["im2col", "winograd", "test_noisy", "test_broken"], x, w, None, g, True)
    assert errs["im2col"] < 1e-6
    assert 1e-8 < errs["winograd"] < 1e-4        # both tiles checked, F(4x4) ~1e-6
    assert 1e-4 < errs["test_noisy"] < 1e-2
    assert errs["test_broken"] == float("inf")


def test_inaccurate_and_failing_variants_are_excluded():
    alg = BestOfConv(candidates=["im2col", "test_noisy", "test_broken", "winograd"])
    g = ConvGeometry(4, 8, 10, 10, 16, 3, 3, padding=(1, 1))
    st = _run(alg, g)
    assert set(st.excluded) == {"test_noisy", "test_broken"}
    assert st.excluded["test_broken"] == float("inf")
    assert st.winner in ("im2col", "winograd") and st.settled
    assert st.errors["winograd"] < 1e-4
    row = [r for r in T.collect() if r["tuner"] == "conv"][0]
    assert set(row["excluded"]) == {"test_noisy", "test_broken"}
    assert "excluded (error): test_broken inf, test_noisy" in format_report(T.collect())
    assert "excluded for accuracy: test_broken on 1 shape(s), test_noisy on 1 shape(s)" \
        in summary(T.collect())


def test_a_tight_tolerance_leaves_the_default():
    T.configure(T.TuneOptions(rounds=2, warmup=1, max_error=1e-12))
    st = _run(BestOfConv(), ConvGeometry(4, 8, 10, 10, 16, 3, 3, padding=(1, 1)))
    assert st.winner == "im2col" and st.source == "only"     # the default is never excluded
    assert "winograd" in st.excluded
    T.configure(T.TuneOptions(rounds=2, warmup=1, max_error=0))   # 0: no screen
    st = _run(BestOfConv(), ConvGeometry(4, 8, 10, 10, 16, 3, 3, padding=(1, 1)))
    assert not st.errors and not st.excluded


class MaxWith:
    """A node communicator whose other rank reported ``other`` (MAX-reduced)."""
    def __init__(self, other):
        self.other = other

    def node_allreduce(self, v, op):
        assert op == "max"
        o = self.other(np.asarray(v))
        return np.maximum(v, o) if o is not None else v


def test_screen_errors_are_reduced_over_the_node():
    # locally "b" is accurate, but another rank of the node saw an error of 1e-2: both
    # ranks must exclude it (or their candidate lists, and collectives, would differ)
    comm = MaxWith(lambda v: np.array([0.0, 1e-2]) if len(v) == 2 and v[1] < 1e-3 else None)
    bo = BestOf("t", ["a", "b"], comm=comm, max_error=1e-4,
                screen=lambda key, names: {"a": 0.0, "b": 1e-7})
    assert bo.choose("k") == "a" and bo.state("k").source == "only"
    assert bo.state("k").excluded == {"b": 1e-2}


def test_budget_stops_tuning_on_what_was_measured():
    budget = TuningBudget(max_seconds=5.0)
    cache = T.TuneCache(None)
    bo = BestOf("t", ["a", "slow"], rounds=5, warmup=1, prune_ratio=100, gross_ratio=100,
                budget=budget, cache=cache)
    cost = {"a": 1.0, "slow": 4.0}
    calls = 0
    while not bo.settled("k1"):
        n = bo.choose("k1")
        bo.record("k1", n, cost[n])
        calls += 1
    st = bo.state("k1")
    # the warm-up and each round cost 3 s beyond "a": over 5 s after the first round,
    # not after five
    assert st.source == "budget" and st.winner == "a" and calls == 4
    assert budget.spent() == pytest.approx(6.0) and budget.exceeded()
    assert cache.get("t", "k1") is None                 # not cached: later runs tune on
    assert bo.choose("k2") == "a" and bo.state("k2").source == "budget"   # new keys: default
    assert not TuningBudget(0).exceeded(1e9)            # 0: no limit


def test_budget_spent_is_reduced_over_the_node():
    # this rank has spent nothing, another rank of the node is over the budget: both
    # decide at the same round end (the other rank goes over the budget after this key
    # started: at its start, the cache check's reduction (-idx, idx, spent) saw 0 spent)
    other = {"spent": 0.0}
    comm = MaxWith(lambda v: np.concatenate([np.zeros(len(v) - 1), [other["spent"]]]))
    bo = BestOf("t", ["a", "b"], rounds=5, warmup=0, prune_ratio=100, gross_ratio=100,
                budget=TuningBudget(max_seconds=10.0), comm=comm)
    bo.choose("k")
    other["spent"] = 100.0
    while not bo.settled("k"):
        n = bo.choose("k")
        bo.record("k", n, 1.0)
    assert bo.state("k").source == "budget" and bo.state("k").rounds_done == 1
    # and a key that starts later takes the default at once, on every rank
    assert bo.choose("k2") == "a" and bo.state("k2").source == "budget"


def test_nested_tuners_are_not_counted_twice():
    budget = TuningBudget(1.0)
    outer = BestOf("outer", ["a", "b"], warmup=0, budget=budget)
    BestOf("inner", ["x", "y"], warmup=0, budget=budget, account=False)
    assert budget.tuners == [outer]


def test_candidates_and_config_checks():
    assert "torch" not in CANDIDATES and BestOfConv().names == CANDIDATES
    T.configure(TuneConfig(candidates=["winograd", "torch"]).options())
    assert BestOfConv().names == ["im2col", "winograd", "torch"]
    for bad in (TuneConfig(candidates=["wingrad"]), TuneConfig(force="bestof"),
                TuneConfig(max_seconds=-1), TuneConfig(max_error=-1e-3)):
        with pytest.raises(ConfigError, match="tune."):
            bad.options()
    opts = TuneConfig(max_error=1e-3, max_seconds=5).options()
    assert (opts.max_error, opts.max_seconds) == (1e-3, 5)


def test_key_names_the_isa_level():
    alg = BestOfConv()
    g = ConvGeometry(2, 4, 6, 6, 8, 3, 3, padding=(1, 1))
    key = alg.key(g, True)
    assert key[3] == isa.current() and key[-1] == "train"
    if isa.LEVELS.index(isa.cpu()) >= 1 and isa.requested(strict=False) != "numpy":
        with isa.capped("generic"):
            assert alg.key(g, True)[3] == "generic"
        assert alg.key(g, True) == key


def test_scope_option():
    import dtnn.tune as T
    from dtnn.config import TuneConfig
    from dtnn.errors import ConfigError
    from dtnn.parallel.context import SerialContext
    with pytest.raises(ConfigError, match="tune.scope = 'host'"):
        TuneConfig(scope="host").check()
    with pytest.raises(ValueError, match="tune.scope"):
        T.TuneOptions(scope="world")
    assert TuneConfig().options().scope == "job"
    assert TuneConfig(scope="node").options().scope == "node"
    ctx = SerialContext()
    v = np.array([1.0, 2.0])
    assert np.array_equal(ctx.job_allreduce(v), v)

    class NodeOnly:   # a context without job_allreduce is used as it is
        def node_allreduce(self, values, op="max"):
            return np.asarray(values)
    node_only = NodeOnly()
    try:
        T.configure(T.TuneOptions(use_cache=False), comm=node_only)
        assert T.get_tuner("t", ["a", "b"]).comm is node_only
        T.configure(T.TuneOptions(use_cache=False, scope="job"), comm=ctx)
        assert T.get_tuner("t", ["a", "b"]).comm.ctx is ctx
        T.configure(T.TuneOptions(use_cache=False, scope="node"), comm=ctx)
        assert T.get_tuner("t", ["a", "b"]).comm is ctx
        assert T.current_comm() is ctx
    finally:
        T.configure()
