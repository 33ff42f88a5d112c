"""Progress points inside the first layer's backward (dist.progress_parts, #17) under
MPI, any world size >= 2: the reducer turns them on, every rank's hooks see them,
replicas stay bit-identical, and training matches the one-call backward to rounding."""
import numpy as np
import pytest

from dtnn.models.model import PROGRESS
from dtnn.parallel.mpi import MPIContext

from ._helpers import assert_all, conv_net, dataset, max_rel_diff, train_distributed

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(180, method="thread")]


def _counting(factory, seen):
    def build(seed):
        model = factory(seed)
        backward = model.backward

        def counted(dy, on_grads_ready=None):
            def hook(layer):
                seen.append(layer)
                on_grads_ready(layer)
            return backward(dy, on_grads_ready=hook if on_grads_ready else None)
        model.backward = counted
        return model
    return build


@pytest.mark.parametrize("algorithm", ["ring", "mpi"])
def test_split_first_layer_keeps_replicas_identical(algorithm):
    ctx = MPIContext()
    opts = {"bucket_mb": 0.0005, "algorithm": algorithm, "check_replicas": True}
    seen = []
    split, _, rs = train_distributed(ctx, _counting(lambda s: conv_net(s, bn=True), seen),
                                     dataset("conv"), 8, 4, "sgd",
                                     dict(opts, progress_parts=4))
    whole, _, rw = train_distributed(ctx, lambda s: conv_net(s, bn=True), dataset("conv"),
                                     8, 4, "sgd", dict(opts, progress_parts=1))
    assert_all(split.progress_parts == 4 and whole.progress_parts == 1, "parts set by dist")
    # 8 images per rank in 4 parts: 3 progress points per step, 4 steps
    assert_all(seen.count(PROGRESS) == 12, "progress points", str(seen.count(PROGRESS)))
    err = max_rel_diff(split.flat_params, whole.flat_params)
    assert_all(err < 1e-5, "split == one call up to rounding", f"{err:.3g}")
    rs.close()
    rw.close()
