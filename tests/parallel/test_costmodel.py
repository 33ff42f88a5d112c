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


def test_fit_link_takes_alpha_from_small_messages_under_a_burst():
    # tc's token bucket: messages up to its burst pass at full speed, below the line;
    # a plain least-squares fit would give a negative alpha (clipped), not the latency
    def t(p, n):
        hops = 2 * (p - 1)
        return hops * LINK.alpha + (0.0 if n <= 4096 else 2 * (p - 1) / p * n * LINK.beta)
    rows = [(p, n, t(p, n)) for p in (2, 4) for n in (4096, 1 << 18, 1 << 20, 1 << 23)]
    fit = fit_link(rows)
    assert fit.alpha == pytest.approx(LINK.alpha, rel=1e-6)
    assert fit.beta == pytest.approx(LINK.beta, rel=1e-6)
    # MPICH's recursive doubling: 2 log2 N latency terms, not 2 (N-1)
    mpi = [(p, n, 2 * np.log2(p) * LINK.alpha + (n > 4096) * 2 * (p - 1) / p * n * LINK.beta)
           for p in (2, 4) for n in (4096, 1 << 20, 1 << 23)]
    assert fit_link(mpi, algorithm="mpi").alpha == pytest.approx(LINK.alpha, rel=1e-6)


def test_fit_links_keeps_shared_host_links_and_mpi_apart(tmp_path):
    import json
    from dtnn.bench.model import fit_links, link_for
    sweep = tmp_path / "sweep.jsonl"
    lines = []
    for ranks, local, slow in ((2, 1, 1.0), (4, 1, 1.0), (4, 2, 3.0)):
        rows = [{"algorithm": a, "bytes": n,
                 "median": slow * (2 * (ranks - 1) * LINK.alpha
                                   + 2 * (ranks - 1) / ranks * n * LINK.beta) * (1.2 if a == "mpi" else 1)}
                for a in ("ring", "mpi") for n in (1 << 20, 1 << 23)]
        lines.append(json.dumps({"label": f"{ranks // local} hosts 1gbit {ranks} ranks: x",
                                 "ranks": ranks, "local_size": local, "rows": rows}))
    sweep.write_text("\n".join(lines) + "\n")
    links = fit_links(sweep)
    assert links["1gbit"].beta == pytest.approx(LINK.beta, rel=1e-6)   # 2x2 rows left out
    assert link_for("1gbit", links, "mpi").beta > links["1gbit"].beta
    assert link_for("1gbit", links, "ring", local=2).beta > 2 * LINK.beta
    assert link_for("1gbit", links, "hier", local=2) is links["1gbit"]
    assert link_for("10gbit", links).beta == pytest.approx(8 / (10e9 * 0.95))
