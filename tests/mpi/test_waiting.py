"""Every wait policy (collectives.waiting) finishes real collectives with the right
sums, any world size >= 2: several ops in flight, multi-step rings, MPI's own
nonblocking allreduce; and the policy is restored afterwards."""
import numpy as np
import pytest

from dtnn.parallel import collectives as C
from dtnn.parallel.collectives import waiting as W

from ._helpers import assert_all, max_rel_diff, world

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]


@pytest.fixture(scope="module")
def topo():
    return C.Topology(world().Dup())


@pytest.fixture
def policy():
    saved = W.wait_policy()
    yield W.set_wait_policy
    W.set_wait_policy(saved)


@pytest.mark.parametrize("spec", ["sleep:100", "sleep:5", "yield", "idle", "mpi", "poll:100"])
@pytest.mark.parametrize("algo_name", ["ring", "mpi"])
def test_policy_finishes_allreduces_with_the_right_sum(topo, policy, spec, algo_name):
    policy(spec)
    p, r = world().Get_size(), world().Get_rank()
    algo = C.build(algo_name, topo)
    for seed, n in enumerate([1, 1000, 65537]):
        xs = [np.random.default_rng(100 * seed + q).standard_normal(n).astype(np.float32)
              for q in range(p)]
        want = np.sum(np.array(xs, np.float64), axis=0)
        bufs = [xs[r].copy() for _ in range(3)]
        idle = []
        C.wait([algo.start(b) for b in bufs], on_idle=idle.append)
        err = max(max_rel_diff(b, want) for b in bufs)
        assert_all(err < 1e-5, f"{spec} {algo_name} n={n}", f"{err:.3g}")
        assert idle == sorted(idle)
