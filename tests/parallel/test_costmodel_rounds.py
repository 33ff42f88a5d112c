"""The cost model's progress-bound hops and blocking rounds (dtnn.bench.costmodel_rounds,
``predict_step(progress=...)``) and the chain wait of ranks sharing cores
(``Oversub.wait_per_round``, fitted from the ``chain`` phase), on synthetic inputs
whose answers follow from the protocol by hand."""
import json

import numpy as np
import pytest

from dtnn.bench.costmodel import (Codec, Exchange, Link, Oversub, predict_step,
                                  transport_seconds)
from dtnn.bench.costmodel_rounds import bucket_rounds, hop_schedule, progress_points
from dtnn.bench.model import fit_oversub

ALPHA = 1e-4
LINK = Link(alpha=ALPHA, beta=8 / 1e9)
MB = 1 << 20
# a two-round summable codec (PowerSGD's shape): 1 ns/element each for encode,
# between and decode, payload 1 % of the gradient
PSGD = Codec(encode=1e-9, decode=1e-9, payload_ratio=0.01, summable=True, rounds=2,
             between=1e-9)


def test_progress_points_keep_the_first_hook_of_each_cluster():
    assert progress_points([0.0105, 0.010, 0.0101, 0.02, 0.0205, 0.0216]) == \
        [0.010, 0.02, 0.0216]
    assert progress_points([]) == []


@pytest.mark.parametrize("ranks", [2, 4, 8])
def test_rounds_follow_the_protocol(ranks):
    n = 4 * MB
    ring, dec = bucket_rounds("ring", n, None, ranks)
    assert [(r.hops, r.hop_bytes) for r in ring] == [(2 * (ranks - 1), n / ranks)] and dec == 0
    rounds, dec = bucket_rounds("allreduce", n, PSGD, ranks)
    assert [r.hops for r in rounds] == [2 * (ranks - 1)] * 2
    # codec where the protocol puts it: encode, then between, then decode
    el = n / 4
    assert [r.cpu_before for r in rounds] == pytest.approx([el * 1e-9, el * 1e-9])
    assert dec == pytest.approx(el * 1e-9)
    ag, _ = bucket_rounds("allgather", n, Codec(1e-9, 1e-9, 0.25), ranks)
    assert ag[0].hops == ranks - 1 and ag[0].hop_bytes == pytest.approx(0.25 * n)
    # the bytes the hops carry are what the continuous model says a rank receives
    for coll, codec in (("ring", None), ("allreduce", PSGD), ("qring", Codec(1e-9, 1e-9, 0.25)),
                        ("allgather", Codec(1e-9, 1e-9, 0.25))):
        rs, _ = bucket_rounds(coll, n, codec, ranks)
        got = transport_seconds(coll, n, codec, ranks, LINK)[2]
        assert sum(r.hops * r.hop_bytes for r in rs) == pytest.approx(got)
    with pytest.raises(ValueError):
        bucket_rounds("hier", n, None, ranks)


def test_without_hooks_every_hop_runs_after_compute():
    busy, n, p = 0.1, 1 * MB, 4
    finish, after, during = hop_schedule(busy, [(n, 0.5)], "ring", None, p, LINK, [])
    hops = 2 * (p - 1)
    assert finish == pytest.approx(busy + hops * (ALPHA + n / p * LINK.beta))
    assert after == 0.0 and during == 0.0


def test_during_compute_one_hop_per_progress_point():
    # hooks every 5 ms from 10 to 95 ms; a tiny 4-rank ring posted at 20 ms: its
    # 6 hops are seen at the next 6 hooks (25..50 ms), whatever the link's speed
    busy, p = 0.1, 4
    hooks = [f / 1000 for f in range(10, 100, 5)]
    fracs = [h / busy for h in hooks]
    finish, after, during = hop_schedule(busy, [(4096, 0.2)], "ring", None, p, LINK, fracs)
    assert finish == pytest.approx(0.050)
    assert during == pytest.approx(2 * (p - 1) * 4096 / p)
    # two hooks after the post: hops 1-2 seen there, hop 3 (posted at the second) is
    # seen when compute ends, the last 3 then run back to back
    finish, _, during = hop_schedule(busy, [(4096, 0.2)], "ring", None, p, LINK,
                                     [0.2, 0.25, 0.3])
    assert finish == pytest.approx(busy + 3 * (ALPHA + 1024 * LINK.beta))
    assert during == pytest.approx(3 * 1024)


def test_codec_after_compute_holds_the_cpu_and_the_rounds_chain():
    # two PowerSGD buckets that close when compute ends (no hooks): per bucket
    # encode, round 1, between, round 2, decode, all after compute: the CPU runs one
    # codec phase at a time and the buckets' rounds wait for it
    busy, p, n = 0.1, 4, 40 * MB
    c = n / 4 * 1e-9                                 # 10.5 ms per codec phase
    rnd = 2 * (p - 1) * (ALPHA + 0.01 * n / 2 / p * LINK.beta)   # 3.1 ms < c
    finish, after, _ = hop_schedule(busy, [(n, 1.0), (n, 1.0)], "allreduce", PSGD, p,
                                    LINK, [])
    assert after == pytest.approx(6 * c)             # 2 x (encode, between, decode)
    # by hand: each round ends while the CPU still runs the other bucket's codec
    assert finish == pytest.approx(busy + 6 * c)
    ex = Exchange([(n, 1.0), (n, 1.0)])
    plain = predict_step(busy, ex, p, LINK, "allreduce", PSGD)
    hops = predict_step(busy, ex, p, LINK, "allreduce", PSGD, progress=[])
    # the same codec total; the codec after compute is counted once (not as exposed)
    assert hops["codec"] == pytest.approx(plain["codec"]) == pytest.approx(6 * c)
    assert hops["exposed"] == pytest.approx(0.0, abs=1e-12)
    # codec much shorter than a round: the two rounds of a bucket are the chain
    tiny = Codec(1e-12, 1e-12, 0.01, summable=True, rounds=2, between=1e-12)
    finish, after, _ = hop_schedule(busy, [(n, 1.0)], "allreduce", tiny, p, LINK, [])
    assert finish - busy - after == pytest.approx(2 * rnd, rel=1e-6)


def test_round_wait_applies_to_rounds_after_compute_only():
    busy, p = 0.1, 4
    hooks = [f / busy / 1000 for f in range(10, 100, 5)]
    early = hop_schedule(busy, [(4096, 0.2)], "ring", None, p, LINK, hooks)
    assert hop_schedule(busy, [(4096, 0.2)], "ring", None, p, LINK, hooks,
                        round_wait=0.01)[0] == pytest.approx(early[0])
    late = hop_schedule(busy, [(4096, 1.0)], "ring", None, p, LINK, hooks)
    assert hop_schedule(busy, [(4096, 1.0)], "ring", None, p, LINK, hooks,
                        round_wait=0.01)[0] == pytest.approx(late[0] + 0.01)
    # in predict_step it comes from Oversub at the ranks per core, and replaces the
    # per-step wait (the final wait is that chain of rounds)
    ex = Exchange([(4096, 1.0)])
    over = Oversub(wait_per_step=0.005, wait_per_round=0.01)
    one = predict_step(busy, ex, p, LINK, progress=hooks, oversub=over, ranks_per_core=1.0)
    two = predict_step(busy, ex, p, LINK, progress=hooks, oversub=over, ranks_per_core=2.0)
    assert two["exposed"] - one["exposed"] == pytest.approx(0.01)
    assert two["oversub_round"] == pytest.approx(0.01) and two["oversub_step"] == 0.0
    cont = predict_step(busy, ex, p, LINK, oversub=over, ranks_per_core=2.0)
    assert cont["oversub_step"] == pytest.approx(0.005) and cont["oversub_round"] == 0.0


def test_mpi_and_one_rank_keep_the_continuous_model():
    ex = Exchange([(4 * MB, 0.5)])
    for coll, p in (("mpi", 4), ("ring", 1)):
        a = predict_step(0.1, ex, p, LINK, coll)
        b = predict_step(0.1, ex, p, LINK, coll, progress=[0.6, 0.7])
        assert a["step"] == pytest.approx(b["step"])


def _chain_run(ranks, s, chain_s, hop_s=2e-5):
    hops = 2 * (ranks - 1)
    phases = {"compute": {"compute": 0.05, "cpu": 0.05},
              "sync_alone": {"wait": hops * hop_s},
              "sync": {"compute": 0.05, "wait": hops * hop_s},
              "buckets": {"compute": 0.05, "wait": 0.0},
              "traffic": {"compute": 0.051, "wait": 0.0, "sent": float(MB)},
              "chain": {"compute": 0.002, "wait": hops * hop_s + chain_s}}
    return json.dumps({"ranks": ranks, "oversubscription": s,
                       "phases": [{"phase": k, "median": v} for k, v in phases.items()]})


def test_fit_oversub_measures_the_chain_wait(tmp_path):
    path = tmp_path / "o.jsonl"
    path.write_text("\n".join([_chain_run(2, 1.0, 1e-4), _chain_run(4, 2.0, 2.5e-3),
                               _chain_run(2, 1.0, 2e-4), _chain_run(4, 2.0, 3.5e-3),
                               _chain_run(4, 2.0, 0.02)]) + "\n")
    over, rows = fit_oversub(path)
    assert [r["chain_round_ms"] for r in rows] == pytest.approx([0.1, 2.5, 0.2, 3.5, 20.0])
    # median of the oversubscribed runs minus the least delayed run at one per core
    assert over.wait_per_round == pytest.approx(3.5e-3 - 1e-4)
    assert over.round(1.0) == 0.0 and over.round(3.0) == pytest.approx(2 * over.wait_per_round)


def test_measure_codec_splits_powersgd_between_rounds():
    from dtnn.bench.model import measure_codec
    psgd = measure_codec("powersgd:rank=2", "simplecnn", repeats=2)
    assert psgd.rounds == 2 and psgd.between > 0 and psgd.encode > 0
    one = measure_codec("randomk:ratio=0.01", "simplecnn", repeats=2)
    assert one.rounds == 1 and one.between == 0.0
    assert np.isfinite([psgd.encode, psgd.between, psgd.decode]).all()
