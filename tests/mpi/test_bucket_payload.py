"""The compressed exchange's bucket plan by payload density (``compressed_bucket_bytes``):
the reducer uses it, every rank the same; int8 over qring and allgather with the smaller
buckets keeps replicas bit-identical and the mean within its rounding; TernGrad's plan
is the plain one."""
import numpy as np
import pytest

from dtnn.compress import build_compressor
from dtnn.parallel.buckets import compressed_bucket_bytes
from dtnn.parallel.options import DistOptions
from dtnn.parallel.reducer import GradientReducer, plan_buckets

from ._helpers import assert_all, world
from .test_layout import ArrayLayout, _step

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]

SHAPES = [(8, 3, 3, 3), (8,), (16, 8, 3, 3), (16,), (32, 16, 3, 3), (32,), (64, 32),
          (10, 64)]
BUCKET_MB = 0.02       # about 5 K elements: several buckets at full size


def _reducer(spec, **extra):
    layout = ArrayLayout(SHAPES)
    opts = {"bucket_mb": BUCKET_MB, "compress": spec, "min_compress_size": 64,
            "check_replicas": True, **extra}
    return layout, GradientReducer(world().Clone(), layout, DistOptions.resolve(opts, env={}))


@pytest.mark.parametrize("spec, denser", [("int8", True), ("terngrad", False),
                                          ("sign", False), ("randomk:ratio=0.1", False)])
def test_reducer_plans_by_payload(spec, denser):
    layout, reducer = _reducer(spec)
    nbytes = int(BUCKET_MB * (1 << 20))
    plain = plan_buckets(layout, nbytes)
    comp, _ = build_compressor(spec)
    want = plan_buckets(layout, *compressed_bucket_bytes(comp, nbytes))
    assert_all(reducer.buckets == want, f"{spec}: the payload plan")
    assert_all((reducer.buckets != plain) == denser, f"{spec}: differs from the plain plan",
               f"{[(a, b) for a, b, _ in reducer.buckets]} vs {[(a, b) for a, b, _ in plain]}")
    table = world().allgather(reducer.buckets)
    assert_all(all(t == table[0] for t in table), f"{spec}: the same plan on every rank")
    reducer.close()


@pytest.mark.parametrize("collective", ["qring", "allgather"])
def test_int8_small_buckets_identical_replicas_and_mean(collective):
    comm = world()
    layout, reducer = _reducer("int8", collective=collective)
    assert_all(reducer.exchange.collective == collective, "the collective asked for")
    assert_all(len(reducer.buckets) > 3, "int8: more buckets than the plain plan's",
               str(len(reducer.buckets)))
    rng = np.random.default_rng(40 + comm.rank)
    for step in range(3):
        grads = rng.standard_normal(layout.flat_grads.size).astype(np.float32)
        got = _step(reducer, layout, grads, rng.permutation(layout.num_groups))
        table = comm.allgather(got)
        assert_all(all(np.array_equal(t, table[0]) for t in table), f"step {step}: identical")
        want = np.mean(comm.allgather(grads.astype(np.float64)), axis=0)
        # int8 with one scale per unit: each element within (hops + 1) quantisation steps
        # of max|g| / 127 of the mean (stochastic rounding, one step per compression)
        bound = (comm.size + 1) * 4.5 * comm.size / 127.0
        err = float(np.max(np.abs(got - want)))
        assert_all(err < bound, f"step {step}: mean within the int8 rounding", f"{err:.3g}")
    reducer.close()
