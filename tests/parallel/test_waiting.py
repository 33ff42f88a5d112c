"""collectives.waiting: the policies' parsing, that every policy finishes every op,
calls on_idle, restores the thread's scheduling class, the sleep policy's backoff,
and the poll policy's fallback to plain sleeps on a socket that stays readable.
No MPI (fake ops); the MPI side is in tests/mpi/test_collectives.py."""
import os
import socket

import pytest

from dtnn.errors import ConfigError
from dtnn.parallel.collectives import waiting as W
from dtnn.parallel.collectives.base import Op


class CountdownOp(Op):
    """Done after ``n`` calls of progress(); a new pending list every ``every`` calls
    (as a multi-step op posts its next step)."""

    def __init__(self, n, every=0, probe=None):
        super().__init__()
        self.left, self.every, self.calls, self.probe = n, every, 0, probe
        self.reqs = []

    def progress(self):
        if self.done:
            return True
        self.calls += 1
        if self.probe is not None:
            self.probe()
        if self.every and self.calls % self.every == 0:
            self.reqs = []
        self.left -= 1
        if self.left <= 0:
            self.done = True
        return self.done


@pytest.fixture
def policy():
    saved = W.wait_policy()
    yield W.set_wait_policy
    W.set_wait_policy(saved)


@pytest.mark.parametrize("spec,want", [
    ("yield", ("yield", 100e-6)), ("sleep", ("sleep", 100e-6)),
    ("sleep:25", ("sleep", 25e-6)), ("poll:200", ("poll", 200e-6)),
    ("idle", ("idle", 100e-6)), ("mpi", ("mpi", 100e-6)), (" sleep:1.5 ", ("sleep", 1.5e-6))])
def test_parse_policy(spec, want):
    name, cap = W.parse_policy(spec)
    assert name == want[0] and cap == pytest.approx(want[1])


@pytest.mark.parametrize("spec", ["", "nap", "yield:3", "idle:5", "sleep:", "sleep:abc",
                                  "sleep:0", "sleep:-5", "sleep:1e9"])
def test_bad_policy_is_a_config_error_naming_the_variable(spec):
    if spec == "sleep:":   # an empty cap is the default cap
        assert W.parse_policy(spec) == ("sleep", pytest.approx(100e-6))
        return
    with pytest.raises(ConfigError, match="DTNN_WAIT"):
        W.parse_policy(spec)


def test_default_policy_is_sleep_100():
    assert W.DEFAULT == "sleep:100"
    assert W.parse_policy(W.DEFAULT) == ("sleep", pytest.approx(100e-6))


@pytest.mark.parametrize("spec", ["yield", "sleep:5", "idle", "poll:5"])
def test_every_policy_finishes_every_op_and_reports_idle_time(policy, spec):
    policy(spec)
    ops = [CountdownOp(1), CountdownOp(4), CountdownOp(9, every=3)]
    seen = []
    W.wait(ops, on_idle=seen.append)
    assert all(op.done for op in ops)
    # the first op is done at the first test and not tested again
    assert [op.calls for op in ops] == [1, 4, 9]
    # on_idle between rounds while something is live: rounds 2..8 of the longest op
    assert len(seen) == 7 and seen == sorted(seen) and seen[0] >= 0


def test_wait_returns_at_once_when_everything_is_done(policy):
    policy("sleep:100")
    seen = []
    W.wait([CountdownOp(1)], on_idle=seen.append)
    W.wait([], on_idle=seen.append)
    assert seen == []


def test_sleep_policy_yields_once_then_doubles_naps_up_to_the_cap(policy, monkeypatch):
    naps, yields = [], []
    monkeypatch.setattr(W.time, "sleep", naps.append)
    monkeypatch.setattr(W.os, "sched_yield", lambda: yields.append(1))
    policy("sleep:100")
    W.wait([CountdownOp(8)])
    assert len(yields) == 1
    assert naps == pytest.approx([20e-6, 40e-6, 80e-6, 100e-6, 100e-6, 100e-6])


def test_idle_policy_puts_the_thread_back_in_its_class(policy):
    policy("idle")
    classes = []
    op = CountdownOp(3, probe=lambda: classes.append(os.sched_getscheduler(0)))
    before = os.sched_getscheduler(0)
    W.wait([op])
    assert os.sched_getscheduler(0) == before
    if W.idle_class_available() and before == os.SCHED_OTHER:
        # the first test runs before the wait starts, the others inside it
        assert classes[0] == os.SCHED_OTHER and set(classes[1:]) == {os.SCHED_IDLE}
    else:
        assert set(classes) == {before}


def test_idle_policy_restores_the_class_when_a_test_raises(policy):
    policy("idle")
    before = os.sched_getscheduler(0)

    class Boom(CountdownOp):
        def progress(self):
            if self.calls == 1:
                raise RuntimeError("peer died")
            return super().progress()

    with pytest.raises(RuntimeError, match="peer died"):
        W.wait([Boom(5)])
    assert os.sched_getscheduler(0) == before


def test_poll_policy_falls_back_to_sleeps_on_a_socket_that_stays_readable(policy,
                                                                          monkeypatch):
    a, b = socket.socketpair()
    try:
        b.send(b"x")        # never read: select() reports it readable every time
        monkeypatch.setattr(W._SOCKETS, "get", lambda: [a.fileno()])
        naps = []
        monkeypatch.setattr(W.time, "sleep", naps.append)
        policy("poll:50")
        W.wait([CountdownOp(8)])
        # two readable wakes that move nothing, then a plain sleep, and again
        assert len(naps) == 2 and naps == pytest.approx([50e-6, 50e-6])
    finally:
        a.close()
        b.close()


def test_poll_policy_lists_this_process_sockets():
    a, b = socket.socketpair()
    try:
        s = W._Sockets()
        fds = s.get()
        assert a.fileno() in fds and b.fileno() in fds
    finally:
        a.close()
        b.close()


def test_the_policies_are_a_table_and_a_registered_one_is_used(policy):
    assert list(W.REGISTRY) == ["yield", "idle", "mpi", "sleep", "poll"]
    assert [n for n, p in W.REGISTRY.items() if p.takes_cap] == ["sleep", "poll"]
    with pytest.raises(ConfigError) as err:
        W.parse_policy("nap")
    assert str(err.value) == ("DTNN_WAIT='nap': expected one of yield, idle, mpi, "
                              "sleep[:<us>], poll[:<us>]")
    pauses, entered = [], []

    class Scope:
        def __enter__(self):
            entered.append("in")

        def __exit__(self, *exc):
            entered.append("out")

    W.register("count", takes_cap=True, scope=Scope)(
        lambda cap: (lambda live: pauses.append((cap, len(live)))))
    try:
        policy("count:7")
        assert W.wait_policy() == "count:7"
        W.wait([CountdownOp(3), CountdownOp(2)])
        # the first test is before the wait; then a pause before each further round
        assert pauses == [(pytest.approx(7e-6), 2), (pytest.approx(7e-6), 1)]
        assert entered == ["in", "out"]
    finally:
        del W.REGISTRY["count"]


def test_the_exchange_thread_drains_with_the_wait_policy_not_a_yield_loop(policy,
                                                                           monkeypatch):
    """ThreadExecutor (dist.comm_thread): once the step drains it, the thread waits for
    its ops through collectives.wait (the policy's pauses), never sched_yield."""
    import threading
    from dtnn.parallel.worker import ThreadExecutor
    yields = []
    real_yield = W.os.sched_yield
    monkeypatch.setattr(W.os, "sched_yield",
                        lambda: (yields.append(threading.current_thread().name),
                                 real_yield()))
    pauses = []
    W.register("count")(lambda cap: (lambda live: pauses.append(
        threading.current_thread().name)))
    ex = ThreadExecutor(poll_interval=30.0)   # no test of its own before the drain
    try:
        policy("count")
        for _ in range(2):   # two steps
            ops = [CountdownOp(5), CountdownOp(2)]
            ex.begin()
            ex.submit(lambda: ops)
            done = ex.drain()
            assert done == ops and all(op.done for op in ops)
            assert [op.calls for op in ops] == [5, 2]
        assert pauses and set(pauses) == {"dtnn-exchange"} and not yields
    finally:
        ex.close()
        del W.REGISTRY["count"]
