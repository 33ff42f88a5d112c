"""SparCML in the cost model (costmodel.sparse_cpu / sparse_union, the 'sparse' hop
schedule) and validation rows paired with their own run's exchange-skipped step, on
synthetic inputs whose answers follow from the protocol by hand."""
import numpy as np
import pytest

from dtnn.bench.costmodel import (Codec, Link, ModelProfile, sparse_cpu, sparse_union,
                                  transport_seconds)
from dtnn.bench.costmodel_rounds import bucket_rounds
from dtnn.bench.model import validate

LINK = Link(alpha=1e-4, beta=8 / 1e9)
MB = 1 << 20


def _topk(ratio, entry=1e-8, dense_pass=1e-9):
    return Codec(1e-9, 1e-10, 2 * ratio, sparse_k=ratio, sparse_entry=entry,
                 sparse_pass=dense_pass)


def test_union_of_independent_topk_sets():
    rng = np.random.default_rng(0)
    n, k, p = 20000, 400, 4
    sizes = [len(set(np.concatenate([rng.choice(n, k, replace=False) for _ in range(p)])))
             for _ in range(50)]
    assert np.mean(sizes) == pytest.approx(sparse_union(n, k, p), rel=0.01)
    assert sparse_union(n, k, 1) == pytest.approx(k)
    assert sparse_union(n, n, 3) == pytest.approx(n)


@pytest.mark.parametrize("ranks", [2, 4, 8])
def test_sparse_rounds_follow_the_protocol(ranks):
    n = 4 * MB
    el = n / 4
    codec = _topk(0.01)
    rounds, dec = bucket_rounds("sparse", n, codec, ranks)
    # one reduce-scatter hop, then N-1 allgather hops of one range's block
    assert [r.hops for r in rounds] == [1, ranks - 1]
    k = 0.01 * el
    union = sparse_union(el, k, ranks)
    assert rounds[0].hop_bytes == pytest.approx((ranks - 1) / ranks * 8 * k)
    assert rounds[1].hop_bytes == pytest.approx(8 * union / ranks)      # sparse: pairs
    reduce, extra, block = sparse_cpu(el, codec, ranks)
    assert rounds[0].cpu_before == pytest.approx(el * 1e-9)            # encode first
    assert rounds[1].cpu_before == pytest.approx(reduce)              # the range's sum
    assert dec == pytest.approx(el * 1e-10 + extra)
    # by hand: 3 passes over n/N, 2k entries, the union's share packed; after: the
    # union's other entries scattered, one write-back pass
    assert reduce == pytest.approx(3 * el / ranks * 1e-9 + 2 * k * 1e-8 + union / ranks * 1e-8)
    assert extra == pytest.approx(el * 1e-9 + (union - k) * 1e-8)
    # the hops carry what the continuous model says a rank receives
    got = transport_seconds("sparse", n, codec, ranks, LINK)[2]
    assert sum(r.hops * r.hop_bytes for r in rounds) == pytest.approx(got)


def test_dense_switch_once_the_union_fills_half_the_range():
    el, p = 1e6, 8
    codec = _topk(0.2)                       # union 83 % of the vector: dense blocks
    _, extra, block = sparse_cpu(el, codec, p)
    assert block == pytest.approx(4 * el / p)
    assert extra == pytest.approx(2 * el * 1e-9)   # a dense pass instead of a scatter
    _, _, sparse_block = sparse_cpu(el, _topk(0.01), p)
    assert sparse_block == pytest.approx(8 * sparse_union(el, 0.01 * el, p) / p)
    assert sparse_block < block


def test_uncalibrated_sparse_cpu_keeps_the_codec_alone():
    n = 4 * MB
    codec = Codec(1e-9, 1e-10, 0.02, sparse_k=0.01)
    _, cod, _ = transport_seconds("sparse", n, codec, 4, LINK)
    assert cod == pytest.approx(n / 4 * (1e-9 + 1e-10))


def test_validation_pairs_each_row_with_its_own_runs_none_step():
    prof = ModelProfile("m", 1000, 0.05, [(4000.0, 0.5)])
    rows = []
    for t, none in (("10:00", 0.050), ("11:00", 0.080)):
        base = {"framework": "dtnn", "model_spec": "m", "hosts": 2, "link": "1gbit", "time": t}
        rows += [dict(base, mode="none", step_seconds=none),
                 dict(base, mode="overlap", step_seconds=none + 0.001, algorithm="ring")]
    out = validate(rows, {"m": prof}, {"none": None}, {"1gbit": LINK})
    # 4 KB at 1 Gbit/s hides behind compute: each row predicts its own run's compute
    assert [round(r["predicted"], 3) for r in out] == [0.050, 0.080]
