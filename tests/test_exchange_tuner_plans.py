"""The exchange tuner's candidate bucket sizes: one per distinct bucket plan (#17)."""
from dtnn.bench.model import _build
from dtnn.parallel.autotune import BUCKET_CHOICES_MB, distinct_plans
from dtnn.parallel.buckets import plan_buckets


def test_sizes_that_cut_the_same_buckets_count_once():
    net = _build("simplecnn", (1, 28, 28), 10)       # 1.6 MB dense layer, 1.7 MB in all
    sizes = sorted({*BUCKET_CHOICES_MB, 4.0})
    kept = distinct_plans(net, sizes, prefer=4.0)
    # 1 MiB closes a bucket after the dense layer; 4 / 16 / 64 MiB are all one bucket,
    # represented by the configured size
    assert kept == [1.0, 4.0]
    plans = [plan_buckets(net, int(mb * (1 << 20))) for mb in kept]
    assert len(plans[0]) == 2 and len(plans[1]) == 1
    # without a preferred size in the group, its smallest size stands for it
    assert distinct_plans(net, sizes, prefer=0.5) == [1.0, 4.0]
    assert distinct_plans(net, [0.001, 1.0, 64.0], prefer=64.0) == [0.001, 1.0, 64.0]
