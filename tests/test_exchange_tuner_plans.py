"""The exchange tuner's candidate bucket sizes: one per distinct bucket plan (#17)."""
from dtnn.bench.model import _build
from dtnn.parallel.autotune import BUCKET_CHOICES_MB, distinct_plans, split_plans
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


def test_the_first_step_after_a_switch_is_not_counted():
    """A step inherits the previous alternative's skew: here a step right after MPI
    with 1 MiB buckets looks 8 ms faster (a made-up carry-over).  Counted, that would
    crown the slowest alternative, MPI with one bucket, which the round-robin always
    runs right after it; the tuner drops those steps and picks the truly fastest."""
    from mpi4py import MPI
    from dtnn.parallel.autotune import ExchangeTuner
    true = {("ring", 1.0): 0.030, ("ring", 4.0): 0.033, ("mpi", 1.0): 0.033,
            ("mpi", 4.0): 0.036}
    tuner = ExchangeTuner(MPI.COMM_SELF, "k", ["ring", "mpi"], [1.0, 4.0], ("ring", 4.0))
    last, steps = None, 0
    while not tuner.settled and steps < 200:
        now = tuner.choose()
        tuner.record(true[now] - (0.008 if last == ("mpi", 1.0) != now else 0.0))
        last, steps = now, steps + 1
    assert tuner.settled
    assert tuner.choose() == ("ring", 1.0)
    row = tuner.report()[0]
    assert row["winner"] == "ring@1"
    # every counted sample is the alternative's true time
    assert all(abs(v - true[(n.split("@")[0], float(n.split("@")[1]))]) < 1e-12
               for n, v in row["stats"].items())


def test_deferred_update_drops_one_bucket_plans():
    """With dist.defer_update the tuner does not time plans of one bucket (nothing of
    the collective could overlap); when every plan is one bucket, they stay."""
    net = _build("simplecnn", (1, 28, 28), 10)
    assert split_plans(net, [1.0, 4.0]) == [1.0]
    assert split_plans(net, [4.0, 64.0]) == [4.0, 64.0]


def test_the_tuner_starts_on_a_kept_plan():
    """A reducer whose configured size (4 MiB, one bucket) was dropped starts the
    tuner on a kept plan: a single kept plan means only the algorithm is tuned, and
    every choice must cut the 1 MiB plan."""
    from types import SimpleNamespace
    from mpi4py import MPI
    from dtnn.parallel.autotune import exchange_tuner
    from dtnn.parallel.layout import as_layout
    from dtnn.parallel.options import DistOptions
    net = _build("simplecnn", (1, 28, 28), 10)
    topo = SimpleNamespace(multi_node=True, size=4, nodes=4, local_size=1, uniform=True)
    red = SimpleNamespace(size=4, options=DistOptions(tune="true", defer_update=True),
                          topo=topo, exchange=None, grads=net.flat_grads,
                          layout=as_layout(net), algorithm="auto", bucket_mb=4.0,
                          comm=MPI.COMM_SELF)
    tuner = exchange_tuner(red)
    assert not tuner.joint and tuner.choose()[1] == 1.0
