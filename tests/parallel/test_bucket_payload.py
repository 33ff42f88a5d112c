"""Compressed exchanges size their buckets by payload (``compressed_bucket_bytes``) and
cap the last bucket, the first layers posted when backward ends (``plan_buckets``'s
``last_bytes``)."""
import pytest

from dtnn.compress import build_compressor
from dtnn.parallel.buckets import compressed_bucket_bytes, plan_buckets
from dtnn.parallel.layout import GradSlot

import numpy as np

MiB = 1 << 20


class Layout:
    """Groups 0..n-1 of the given sizes, laid out in reverse (the last group first)."""

    def __init__(self, sizes):
        self.flat_grads = np.zeros(sum(sizes), np.float32)
        self._ranges, self.slots, off = [None] * len(sizes), [], 0
        for g in reversed(range(len(sizes))):
            self._ranges[g] = (off, off + sizes[g])
            if sizes[g]:
                self.slots.append(GradSlot(g, f"p{g}", off, (sizes[g],)))
            off += sizes[g]

    @property
    def num_groups(self):
        return len(self._ranges)

    def group_range(self, g):
        return self._ranges[g]

    def replica_arrays(self):
        return [self.flat_grads]


# vgg11_bn width 0.5 on 1x28x28 (conv1 .. conv8, the classifier), BN groups between
VGG = [288, 64, 18432, 128, 73728, 256, 147456, 256, 294912, 512, 589824, 512, 589824, 512,
       589824, 512, 65792, 2570]


def _sizes(plan):
    return [e - s for s, e, _ in plan]


def _check_tiles(layout, plan):
    assert plan[0][0] == 0 and plan[-1][1] == layout.flat_grads.size
    assert all(a[1] == b[0] for a, b in zip(plan, plan[1:]))
    starts = {layout.group_range(g)[0] for g in range(layout.num_groups)}
    assert all(s in starts for s, _, _ in plan)         # cut at group boundaries
    for s, e, g in plan:                                 # close_group ends the bucket
        assert layout.group_range(g)[1] == e


@pytest.mark.parametrize("spec, shift", [
    ("int8", 2), ("qsgd:bits=8", 2), ("qsgd:bits=4", 1), ("bf16", 3),
    ("terngrad", 0), ("sign", 0), ("qsgd:bits=2", 0), ("fp16", 0),
    ("randomk:ratio=0.01", 0), ("topk:ratio=0.01", 0), ("topk:ratio=0.01,scope=global", 0),
    ("powersgd:rank=2", 0)])
def test_bucket_bytes_by_payload_density(spec, shift):
    comp, _ = build_compressor(spec)
    got = compressed_bucket_bytes(comp, 4 * MiB)
    if shift == 0:     # payloads of 2 bits per element or less, summable, sparse: as before
        assert got == (4 * MiB, None)
    else:
        assert got == (4 * MiB >> shift, (4 * MiB >> shift) // 4)


def test_last_bucket_cap_on_vgg():
    layout = Layout(VGG)
    old = plan_buckets(layout, 4 * MiB)
    assert _sizes(old) == [1249034, 1107456, 18912]
    assert plan_buckets(layout, 4 * MiB, None) == old
    # already within the cap: unchanged
    assert plan_buckets(layout, 4 * MiB, 4 * 18912) == old
    int8 = plan_buckets(layout, MiB, MiB // 4)
    _check_tiles(layout, int8)
    # the 1 MiB plan's last bucket (conv4 .. conv1) is cut before conv3: conv2 + conv1
    # alone are posted at the end
    assert _sizes(plan_buckets(layout, MiB)) == [658698, 590336, 590336, 295424, 240608]
    assert _sizes(int8) == [658698, 590336, 590336, 295424, 221696, 18912]


def test_last_group_alone_when_nothing_fits():
    layout = Layout([500, 10, 300, 40])
    plan = plan_buckets(layout, 10 ** 9, 4 * 100)     # group 0 (500) alone exceeds it
    _check_tiles(layout, plan)
    assert _sizes(plan) == [350, 500]
    plan = plan_buckets(layout, 10 ** 9, 4 * 520)     # groups 0 and 1 fit
    assert _sizes(plan) == [340, 510]
    assert _sizes(plan_buckets(Layout([500]), 10 ** 9, 4)) == [500]   # one group: kept


def test_empty_groups_are_skipped():
    layout = Layout([300, 0, 20, 0, 700])
    plan = plan_buckets(layout, 10 ** 9, 4 * 330)
    _check_tiles(layout, plan)
    assert _sizes(plan) == [700, 320]
