"""dtnn's own collectives (dtnn.parallel.collectives) under MPI, any world size >= 2:
every allreduce algorithm against numpy's sum of all ranks' inputs, replicas
bit-identical, hierarchical == flat on a two-"node" split of the world, the quantised
ring unbiased (statistically, with a biased control that must fail the same test), the
sparse collectives' results and their sparse/dense switch, bytes per rank that do not
grow with N, the exchange thread == inline, and the online tuner."""
from collections import namedtuple

import numpy as np
import pytest

from dtnn.parallel import collectives as C
from dtnn.parallel.mpi import MPIContext

from ._helpers import (assert_all, assert_same_everywhere, conv_net, dataset, gather_params,
                       max_rel_diff, train_distributed, world)

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(180, method="thread")]


@pytest.fixture(scope="module")
def topo():
    comm = world().Dup()
    return C.Topology(comm)


@pytest.fixture(scope="module")
def split_topo():
    """The world as nodes of two ranks (ranks 2j, 2j+1), for the hierarchical paths on
    one machine; None for an odd world size."""
    comm = world().Dup()
    r, p = comm.Get_rank(), comm.Get_size()
    if p % 2:
        return None
    return C.Topology(comm, comm.Split(r // 2, key=r))


def _inputs(n, seed):
    """Every rank's input and the float64 sum of all of them."""
    p, r = world().Get_size(), world().Get_rank()
    xs = [np.random.default_rng(1000 * seed + q).standard_normal(n).astype(np.float32)
          for q in range(p)]
    return xs[r], np.sum(np.array(xs, np.float64), axis=0)


@pytest.mark.parametrize("name", ["mpi", "ring", "hier", "hier-split"])
def test_allreduce_equals_numpy_sum(topo, split_topo, name):
    t = topo
    if name == "hier-split":
        if split_topo is None:
            pytest.skip("odd world size: no two-rank nodes")
        t, name = split_topo, "hier"
    algo = C.build(name, t)
    for seed, n in enumerate([1, 3, 17, 1000, 65537]):
        x, want = _inputs(n, seed)
        bufs = [x.copy() for _ in range(3)]        # three ops in flight at once
        ops = [algo.start(b) for b in bufs]
        C.wait(ops)
        err = max(max_rel_diff(b, want) for b in bufs)
        assert_all(err < 1e-5, f"{name} n={n}: sum", f"{err:.3g}")
        assert_all(all(np.array_equal(b, bufs[0]) for b in bufs), f"{name} n={n}: same")
        if name != "mpi":
            assert_same_everywhere(bufs[0].tobytes(), f"{name} n={n}: bit-identical replicas")


def test_ring_bytes_are_bandwidth_optimal(topo):
    n = 4096 * topo.size
    x, _ = _inputs(n, 9)
    op = C.build("ring", topo).start(x)
    C.wait([op])
    want = 2 * (topo.size - 1) * x.nbytes / topo.size
    assert_all(op.sent == want and op.received == want, "ring bytes", f"{op.sent} vs {want}")


# --- compressed transports on a plain vector -------------------------------------------
Slot = namedtuple("Slot", "offset size shape")


class _Vector:
    """The smallest 'model' a CompressedExchange needs: one flat tensor."""

    def __init__(self, n):
        self.flat_grads = np.zeros(n, np.float32)
        self.slots = [Slot(0, n, (n,))]


def _exchange(topo, spec, collective, n, hierarchical=False):
    from dtnn.compress import build_compressor
    from dtnn.parallel.exchange import CompressedExchange
    comp, ef = build_compressor(spec)
    vec = _Vector(n)
    cx = CompressedExchange(topo, vec, [(0, n, 0)], comp, ef, 1, seed=5,
                            collective=collective, hierarchical=hierarchical)
    return vec, cx


def _run(cx, vec, x, step):
    vec.flat_grads[:] = x
    cx.begin(step)
    ops = cx.post(0)
    C.wait(ops)
    return vec.flat_grads.copy(), ops


@pytest.mark.parametrize("spec,min_cos", [("int8", 0.99), ("qsgd:bits=8", 0.99),
                                          ("terngrad", 0.3), ("sign", 0.3), ("bf16", 0.999),
                                          ("fp16:accumulate=fp32", 0.999)])
def test_qring_close_to_mean_and_bit_identical(topo, spec, min_cos):
    n = 3000
    vec, cx = _exchange(topo, spec, "qring", n)
    x, want = _inputs(n, 3)
    got, _ = _run(cx, vec, x, 0)
    assert_same_everywhere(got.tobytes(), f"{spec}: bit-identical replicas")
    # one step of a coarse quantiser (TernGrad, sign) is noisy; the decoded mean must
    # still point the same way as the true mean
    cos = float(np.dot(got, want) / (np.linalg.norm(got) * np.linalg.norm(want)))
    assert_all(cos > min_cos, f"{spec}: qring ~ mean", f"cos {cos:.4f}")


def _bias_ratio(topo, spec, trials=60, n=2048):
    """RMS over elements of the mean error after ``trials`` steps, divided by the RMS
    error of one step: ~1/sqrt(trials) if unbiased, ~1 if biased."""
    vec, cx = _exchange(topo, spec, "qring", n)
    x, want = _inputs(n, 4)
    mean = (want / topo.size).astype(np.float64)
    acc = np.zeros(n)
    single = []
    for t in range(trials):
        got, _ = _run(cx, vec, x, t)
        acc += got - mean
        single.append(np.sqrt(np.mean((got - mean) ** 2)))
    return float(np.sqrt(np.mean((acc / trials) ** 2)) / np.mean(single))


def test_qring_is_unbiased(topo):
    trials = 60
    bound = 3.0 / np.sqrt(trials)
    for spec in ("int8", "qsgd:bits=4"):
        ratio = _bias_ratio(topo, spec, trials)
        assert_all(ratio < bound, f"{spec}: unbiased", f"{ratio:.3f} vs {bound:.3f}")
    # control: deterministic rounding is biased, and the same test catches it
    ratio = _bias_ratio(topo, "int8:stochastic=false", trials)
    assert_all(ratio > bound, "int8:stochastic=false is biased", f"{ratio:.3f}")


def _local_topk(x, k):
    idx = np.sort(np.argsort(-np.abs(x), kind="stable")[:k])
    return idx, x[idx]


def test_sparse_is_the_exact_sum_of_local_topk_and_switches_to_dense(topo):
    n, p = 4096, topo.size
    for ratio, dense_expected in [(0.01, False), (0.6, True)]:
        vec, cx = _exchange(topo, f"topk:ratio={ratio},scope=bucket,ef=false", "sparse", n)
        x, _ = _inputs(n, 6)
        got, ops = _run(cx, vec, x, 0)
        k = int(np.ceil(ratio * n))
        want = np.zeros(n, np.float64)
        for q in range(p):
            xq = np.random.default_rng(6000 + q).standard_normal(n).astype(np.float32)
            i, v = _local_topk(xq, k)
            want[i] += v
        err = max_rel_diff(got, want / p)
        assert_all(err < 1e-6, f"sparse ratio={ratio}: exact sum of local top-k", f"{err:.3g}")
        assert_same_everywhere(got.tobytes(), f"sparse ratio={ratio}: bit-identical")
        blocks = ops[0].blocks
        widths = np.diff(C.chunk_bounds(n, p))
        dense = [b.size == w for b, w in zip(blocks, widths)]
        # with p ranks of ratio 0.6 the union covers (nearly) every index: dense blocks
        assert_all(all(dense) if dense_expected else not any(dense),
                   f"sparse ratio={ratio}: dense switch", str(dense))


def test_gtopk_selects_balanced_global_topk_and_keeps_the_rest(topo):
    n, p, ratio = 4096, topo.size, 0.02
    vec, cx = _exchange(topo, f"topk:ratio={ratio},scope=bucket", "gtopk", n)
    x, _ = _inputs(n, 8)
    res = cx.residual(cx.plans[0].unit)
    got, _ = _run(cx, vec, x, 0)
    assert_same_everywhere(got.tobytes(), "gtopk: bit-identical")
    k = int(np.ceil(ratio * n))
    assert_all(np.count_nonzero(got) <= p * int(np.ceil(k / p)), "gtopk: at most k entries")
    # error feedback keeps everything: sum over ranks of (input - residual) == p * result
    kept = world().allreduce(x.astype(np.float64) - res)
    err = max_rel_diff(kept, p * got.astype(np.float64))
    assert_all(err < 1e-5, "gtopk: nothing lost", f"{err:.3g}")


@pytest.mark.parametrize("spec,collective", [("int8", "qring"), ("sign", "qring"),
                                             ("topk:ratio=0.01,scope=bucket", "gtopk"),
                                             ("int8", "allgather")])
def test_bytes_per_rank_do_not_grow_with_world_size(topo, spec, collective):
    """qring/gtopk: each rank receives at most 2 (N-1)/N payloads (< 2 whatever N);
    allgather: N-1 payloads (the control, growing with N)."""
    n = 64 * 1024
    vec, cx = _exchange(topo, spec, collective, n)
    x, _ = _inputs(n, 2)
    _, ops = _run(cx, vec, x, 0)
    payload = cx.compressor.payload_size(cx.plans[0].unit)
    recv = sum(op.received for op in ops) / payload
    p = topo.size
    if collective == "allgather":
        assert_all(abs(recv - (p - 1)) < 1e-9, "allgather receives N-1 payloads", f"{recv}")
    else:
        bound = 2 * (p - 1) / p * 1.1
        assert_all(recv <= bound, f"{spec} by {collective}: payloads received",
                   f"{recv:.3f} > {bound:.3f}")


# --- the reducer: hierarchical == flat, thread == inline, tuning ------------------------
def _ctx_with(topology):
    ctx = MPIContext()
    ctx._topology = topology
    return ctx


def _train(ctx, options, steps=4):
    model, _, reducer = train_distributed(ctx, lambda s: conv_net(s, bn=True), dataset("conv"),
                                          8, steps, "sgd", dict(options, check_replicas=True))
    return model, reducer


@pytest.mark.parametrize("spec", ["none", "int8", "topk:ratio=0.05", "powersgd:rank=1"])
def test_hierarchical_equals_flat(split_topo, spec):
    if split_topo is None:
        pytest.skip("odd world size: no two-rank nodes")
    ctx = _ctx_with(split_topo)
    opts = {"compress": spec, "min_compress_size": 16, "bucket_mb": 0.0005}
    hier, rh = _train(ctx, dict(opts, algorithm="hier"))
    flat, _ = _train(ctx, dict(opts, algorithm="ring"))
    params = gather_params(hier)
    assert_all(all(np.array_equal(q, params[0]) for q in params), f"{spec}: hier bit-identical")
    err = max_rel_diff(hier.flat_params, flat.flat_params)
    # uncompressed: only the order of the fp32 sums differs; compressed: the leaders
    # compress the node's sum instead of every rank its own gradient
    tol = 1e-5 if spec == "none" else 0.5
    assert_all(err < tol, f"{spec}: hier ~ flat", f"{err:.3g}")
    s = rh.stats()
    if split_topo.multi_node and spec == "none":
        flat_bytes = 2 * (split_topo.size - 1) / split_topo.size * rh.payload_bytes
        assert_all(s["wire_recv_bytes"] < 0.75 * flat_bytes, "hier: fewer bytes between nodes",
                   f"{s['wire_recv_bytes']} vs flat {flat_bytes}")


@pytest.mark.parametrize("spec", ["none", "qsgd:bits=4", "powersgd:rank=1"])
def test_exchange_thread_equals_inline(spec):
    ctx = MPIContext()
    opts = {"compress": spec, "min_compress_size": 16, "bucket_mb": 0.0005,
            "algorithm": "ring"}
    a, ra = _train(ctx, dict(opts, comm_thread=True))
    b, _ = _train(ctx, dict(opts, comm_thread=False))
    ra.close()
    assert_all(np.array_equal(a.flat_params, b.flat_params), f"{spec}: thread == inline")
    assert_all(ra.stats()["comm_thread"] in (True, False), "thread flag reported")


def test_online_tuning_agrees_on_every_rank():
    ctx = MPIContext()
    # 48 steps settle it: 2 algorithms x 2 distinct bucket plans (0.0005 MiB, and 1 / 4 /
    # 16 / 64 MiB, which all cut this small model into one bucket), 1 + 3 rounds,
    # each sample after a step that repeats the alternative (the first after a switch is dropped)
    # (defer_update off: with it the tuner drops one-bucket plans, test_exchange_tuner_plans)
    model, reducer = _train(ctx, {"tune": "true", "bucket_mb": 0.0005,
                                  "defer_update": False}, steps=48)
    ref, _ = _train(ctx, {"mode": "blocking"}, steps=48)
    err = max_rel_diff(model.flat_params, ref.flat_params)
    assert_all(err < 1e-4, "tuned exchange == blocking", f"{err:.3g}")
    rows = reducer.stats()["tuning"]
    assert_all(len(rows) == 1, "tuner report: algorithm and bucket size, one joint row")
    assert_same_everywhere([(r["tuner"], r["winner"], r["rounds"]) for r in rows],
                           "same decisions everywhere")
    alts = [n.rpartition("@") for n in rows[0]["stats"]]
    assert_all({b for _, _, b in alts} == {"0.0005", "1"} and {"ring", "mpi"} <= {a for a, _, _ in alts}
               and len(alts) == len({a for a, _, _ in alts}) * 2,
               "one alternative per (algorithm, distinct bucket plan)", str(rows[0]["stats"]))
    # the steps after tuning run the winner, not the last alternative tried
    assert_all(reducer.tuner.settled, "tuner settled within 48 steps")
    algo, _, mb = rows[0]["winner"].rpartition("@")
    assert_all(reducer.algorithm == algo, "winning algorithm in use",
               f"{reducer.algorithm} vs {rows[0]['winner']}")
    assert_all(reducer.bucket_mb == float(mb),
               "winning bucket size in use", f"{reducer.bucket_mb} vs {rows[0]['winner']}")
