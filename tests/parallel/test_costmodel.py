"""The exchange's alpha-beta cost model (dtnn.bench.costmodel): the link fit recovers
known parameters, collectives cost what their algorithms send, the compressed
collectives' traffic does not grow with N where it should not, and the step model
hides communication behind compute only as far as the buckets allow."""
import numpy as np
import pytest

from dtnn.bench.costmodel import (Codec, Exchange, Link, allreduce_seconds, fit_link,
                                  predict_step, transport_seconds)

LINK = Link(alpha=1e-4, beta=8 / 1e9)


def test_fit_link_recovers_alpha_and_beta():
    rows = [(p, n, allreduce_seconds("ring", n, p, LINK))
            for p in (2, 4) for n in (1 << 16, 1 << 20, 1 << 23)]
    fit = fit_link(rows)
    assert fit.alpha == pytest.approx(LINK.alpha, rel=1e-6)
    assert fit.beta == pytest.approx(LINK.beta, rel=1e-6)


def test_ring_is_bandwidth_optimal_and_hier_sends_a_node_once():
    n = 64 << 20
    for p in (2, 4, 64):
        t = allreduce_seconds("ring", n, p, LINK)
        assert t == pytest.approx(2 * (p - 1) * LINK.alpha + 2 * (p - 1) / p * n * LINK.beta)
    flat = allreduce_seconds("ring", n, 4, LINK)
    hier = allreduce_seconds("hier", n, 4, LINK, local=2, shm_bytes_per_s=1e12)
    assert hier == pytest.approx(allreduce_seconds("ring", n, 2, LINK), rel=1e-3)
    assert hier < flat


@pytest.mark.parametrize("collective,grows", [("allgather", True), ("qring", False),
                                              ("gtopk", False), ("sparse", True)])
def test_bytes_per_rank_versus_world_size(collective, grows):
    codec = Codec(1e-9, 1e-9, 0.25, sparse_k=0.01 if collective in ("gtopk", "sparse")
                  else None)
    recv = [transport_seconds(collective, 40 << 20, codec, p, LINK)[2] for p in (4, 64, 256)]
    if grows:
        assert recv[-1] > 4 * recv[0]
    else:   # at most 2 payloads, whatever N
        payload = 0.25 * (40 << 20) if collective == "qring" else 8 * 0.01 * (10 << 20)
        assert max(recv) < 2 * payload
        assert recv[-1] < 1.34 * recv[0]


def test_overlap_hides_what_the_buckets_allow():
    ex = Exchange([(1 << 20, 0.5), (1 << 20, 0.9)])
    slow = Link(0.0, 1e-7)            # 1 MiB in 0.1 s per hop
    hop = (1 << 20) * 1e-7          # ring on 2 ranks: each sends the vector's half twice
    a = predict_step(1.0, ex, 2, slow)
    b = predict_step(1.0, ex, 2, slow, overlap=False)
    assert a["exposed"] == pytest.approx(0.9 + hop - 1.0)     # the first hid entirely
    assert b["exposed"] == pytest.approx(2 * hop)             # both after compute
    assert a["efficiency"] == pytest.approx(1.0 / a["step"])
    # nothing to send: the step is the compute
    assert predict_step(1.0, Exchange([]), 4, slow)["step"] == 1.0
    assert np.isclose(predict_step(1.0, ex, 1, slow)["exposed"], 0.0)
