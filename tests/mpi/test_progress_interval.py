"""dist.progress_interval (#17): hooks that close no bucket skip the advance when the last
one is recent.  When the collectives advance must not change what they compute: training
with every hook advancing (0) and with the hooks never advancing between posts (1e9) gives
bit-identical parameters, and both keep the replicas bit-identical, at any world size >= 2."""
import numpy as np
import pytest

from dtnn.parallel.mpi import MPIContext

from ._helpers import assert_all, conv_net, dataset, train_distributed

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(180, method="thread")]


@pytest.mark.parametrize("opts", [
    {"algorithm": "ring"},
    {"compress": "terngrad", "collective": "qring", "tune": "false"},
    {"compress": "sign", "collective": "allgather", "tune": "false"},
    {"compress": "randomk:ratio=0.05", "tune": "false"},
], ids=["fp32-ring", "terngrad-qring", "sign-allgather", "randomk"])
def test_interval_changes_when_not_what(opts):
    ctx = MPIContext()
    base = dict(opts, bucket_mb=0.0005, check_replicas=True, min_compress_size=16)
    every, _, re = train_distributed(ctx, lambda s: conv_net(s, bn=True), dataset("conv"),
                                     8, 4, "sgd", dict(base, progress_interval=0.0))
    rare, _, rr = train_distributed(ctx, lambda s: conv_net(s, bn=True), dataset("conv"),
                                    8, 4, "sgd", dict(base, progress_interval=1e9))
    assert_all(re.polls_skipped == 0 and re.polls > 0, "interval 0: every hook advances",
               f"{re.polls} / {re.polls_skipped}")
    assert_all(rr.polls_skipped > 0 and rr.polls <= 1, "interval 1e9: at most one advance "
               "outside posts", f"{rr.polls} / {rr.polls_skipped}")
    assert_all(np.array_equal(every.flat_params, rare.flat_params), "same bits")
    re.close()
    rr.close()
