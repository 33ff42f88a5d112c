"""The model-agnostic seam of the gradient exchange (``dtnn.parallel.layout``): a plain
flat buffer + group layout (no dtnn Model) reduced by ``GradientReducer``, with groups
reporting in a different order on every rank, some groups never reporting
(``post_remaining``), plain and compressed."""
import numpy as np
import pytest

from dtnn.parallel.layout import GradSlot, check_layout
from dtnn.parallel.options import DistOptions
from dtnn.parallel.reducer import GradientReducer, plan_buckets

from ._helpers import assert_all, max_rel_diff, world

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]

SHAPES = [(40, 30), (30,), (16, 8, 3, 3), (16,), (500,), (7,), (64, 64)]


class ArrayLayout:
    """Groups = tensors, registration order 0..n-1, laid out in reverse."""

    def __init__(self, shapes):
        sizes = [int(np.prod(s)) for s in shapes]
        self.flat_grads = np.zeros(sum(sizes), np.float32)
        self.params = np.zeros(sum(sizes), np.float32)
        self.slots, off = [], 0
        self._ranges = [(0, 0)] * len(shapes)
        for g in reversed(range(len(shapes))):
            self.slots.append(GradSlot(g, f"p{g}", off, tuple(shapes[g])))
            self._ranges[g] = (off, off + sizes[g])
            off += sizes[g]

    @property
    def num_groups(self):
        return len(self._ranges)

    def group_range(self, g):
        return self._ranges[g]

    def buffers(self):
        return {}

    def replica_arrays(self):
        return [self.params]


def _step(reducer, layout, grads, order, unreported=()):
    layout.flat_grads[...] = grads
    reducer.start_step()
    for g in order:
        if g not in unreported:
            reducer.on_grads_ready(g)
    reducer.post_remaining()
    reducer.finish_step()
    return layout.flat_grads.copy()


def test_layout_checks():
    layout = ArrayLayout(SHAPES)
    check_layout(layout)
    buckets = plan_buckets(layout, 4096)
    assert buckets[0][0] == 0 and buckets[-1][1] == layout.flat_grads.size


@pytest.mark.parametrize("bucket_mb", [0, 0.004, 4])
@pytest.mark.parametrize("unreported", [(), (1, 4)])
def test_any_order_and_unreported_groups_give_the_mean(bucket_mb, unreported):
    comm = world()
    layout = ArrayLayout(SHAPES)
    reducer = GradientReducer(comm.Clone(), layout,
                              DistOptions.resolve({"bucket_mb": bucket_mb}, env={}))
    rng = np.random.default_rng(comm.rank)
    for step in range(3):
        grads = rng.standard_normal(layout.flat_grads.size).astype(np.float32)
        order = rng.permutation(layout.num_groups)    # a different order on every rank
        got = _step(reducer, layout, grads, order, unreported)
        want = np.mean(comm.allgather(grads), axis=0)
        err = max_rel_diff(got, want)
        assert_all(err < 1e-6, f"step {step}: mean", f"{err:.3g}")
        table = comm.allgather(got)
        assert_all(all(np.array_equal(t, table[0]) for t in table), "identical")


@pytest.mark.parametrize("spec", ["fp16", "topk:ratio=0.1", "powersgd:rank=2", "sign"])
def test_compressed_layout_keeps_replicas_identical(spec):
    comm = world()
    layout = ArrayLayout(SHAPES)
    reducer = GradientReducer(comm.Clone(), layout, DistOptions.resolve(
        {"bucket_mb": 0.004, "compress": spec, "min_compress_size": 64,
         "check_replicas": True}, env={}))
    rng = np.random.default_rng(10 + comm.rank)
    for _ in range(3):
        grads = rng.standard_normal(layout.flat_grads.size).astype(np.float32)
        got = _step(reducer, layout, grads, rng.permutation(layout.num_groups), (2,))
        table = comm.allgather(got)
        assert_all(all(np.array_equal(t, table[0]) for t in table), f"{spec}: identical")
        assert_all(np.isfinite(got).all() and np.abs(got).max() > 0, f"{spec}: decoded")
