"""The reducer's step split (parallel/reducer_stats.py): codec that runs inside the
final wait is counted once, as codec, not also as exposed communication (#17)."""
from types import SimpleNamespace

import numpy as np
import pytest

from dtnn.parallel.reducer_stats import StepStats


def _reducer(threaded=False):
    ex = SimpleNamespace(codec_seconds=0.0, sent_bytes=0)
    return SimpleNamespace(_cx=True, exchange=ex, executor=SimpleNamespace(threaded=threaded),
                           _buf_pack=np.zeros(0), payload_bytes=0, size=2, mode="overlap",
                           buckets=[0], bucket_mb=4.0, options=SimpleNamespace(
                               progress=True, compress="topk"))


def _step(st, r, end_prev, t_wait, t_end, codec_hooks, codec_wait, blocking_rounds=0.0):
    """One step: backward (codec_hooks s of codec in the hooks) until t_wait, then the
    final wait until t_end, codec_wait s of codec inside it."""
    st.begin()
    r.exchange.codec_seconds = codec_hooks
    st.wait_begins()
    r.exchange.codec_seconds += codec_wait
    if blocking_rounds:
        st.wait_ends()
        r.exchange.codec_seconds += blocking_rounds / 2   # half of finish_rounds is codec
    return st.end(t_wait, t_end, [], blocking_rounds)


@pytest.mark.parametrize("threaded", [False, True])
def test_codec_inside_the_wait_is_counted_once(threaded):
    r = _reducer(threaded)
    st = StepStats(r)
    assert _step(st, r, 0.0, 0.040, 0.050, 0.002, 0.003) is None     # first: untimed
    step = _step(st, r, 0.050, 0.090, 0.100, 0.002, 0.003)
    assert step == pytest.approx(0.050)
    out = st.summary()
    if threaded:   # the thread's codec overlaps compute and the wait: the wait is exposed
        assert out["exposed_comm_seconds"] == pytest.approx(0.010)
        assert out["compute_seconds"] == pytest.approx(0.040)
        assert out["codec_in_wait_seconds"] == 0.0
    else:
        # the wait: 10 ms, of which 3 ms decode/codec -> 7 ms exposed; compute is the
        # 40 ms of backward minus its 2 ms of codec in the hooks (was 35 ms: the 3 ms
        # were taken out twice)
        assert out["exposed_comm_seconds"] == pytest.approx(0.007)
        assert out["codec_seconds"] == pytest.approx(0.005)
        assert out["codec_in_wait_seconds"] == pytest.approx(0.003)
        assert out["compute_seconds"] == pytest.approx(0.038)
        parts = out["compute_seconds"] + out["codec_seconds"] + out["exposed_comm_seconds"]
        assert parts == pytest.approx(step)


def test_blocking_rounds_codec_is_not_taken_twice():
    r = _reducer()
    st = StepStats(r)
    _step(st, r, 0.0, 0.040, 0.050, 0.002, 0.001, blocking_rounds=0.004)
    _step(st, r, 0.050, 0.090, 0.100, 0.002, 0.001, blocking_rounds=0.004)
    out = st.summary()
    # wait 10 ms = 1 ms codec + 4 ms finish_rounds (reported apart) + 5 ms exposed
    assert out["exposed_comm_seconds"] == pytest.approx(0.005)
    assert out["codec_in_wait_seconds"] == pytest.approx(0.001)
