"""Serial tests of dtnn.parallel pieces: options, launcher variables, scaling, buckets."""
from types import SimpleNamespace

import numpy as np
import pytest

from dtnn.parallel.launcher import launcher_rank, launcher_size, mpi_requested
from dtnn.parallel.options import DistOptions
from dtnn.parallel.reducer import plan_buckets, replica_digest
from dtnn.parallel.scaling import apply_world_size, per_rank_batch, scaled_lr
from dtnn.errors import ConfigError


def test_options_defaults_env_and_explicit():
    o = DistOptions.resolve({}, env={})
    assert (o.mode, o.bucket_mb, o.progress, o.check_replicas) == ("overlap", 4.0, True, False)
    o = DistOptions.resolve({}, env={"DTNN_DIST_MODE": "blocking", "DTNN_BUCKET_MB": "0.5",
                                     "DTNN_CHECK_REPLICAS": "1"})
    assert (o.mode, o.bucket_mb, o.check_replicas) == ("blocking", 0.5, True)
    o = DistOptions.resolve({"mode": "overlap", "bucket_mb": 2}, env={"DTNN_DIST_MODE": "blocking"})
    assert (o.mode, o.bucket_mb) == ("overlap", 2.0)


@pytest.mark.parametrize("bad", [{"mode": "ring"}, {"bucket_mb": -1}, {"bucket_mb": "x"},
                                 {"check_replicas": "maybe"}, {"bucketmb": 1}])
def test_options_errors(bad):
    with pytest.raises(ConfigError):
        DistOptions.resolve(bad, env={})


def test_launcher_variables():
    assert launcher_size({}) == (1, "")
    assert launcher_size({"PMI_SIZE": "4", "PMI_RANK": "3"}) == (4, "PMI_SIZE")
    assert launcher_size({"OMPI_COMM_WORLD_SIZE": "8"}) == (8, "OMPI_COMM_WORLD_SIZE")
    assert launcher_size({"SLURM_STEP_NUM_TASKS": "2"}) == (2, "SLURM_STEP_NUM_TASKS")
    assert launcher_size({"SLURM_NTASKS": "16"}) == (1, "")  # a batch script, not a step
    assert launcher_size({"PMI_SIZE": "1"}) == (1, "")
    assert launcher_rank({"PMI_RANK": "3"}) == 3
    assert launcher_rank({}) is None
    assert mpi_requested({"DTNN_MPI": "1"}) is True
    assert mpi_requested({"DTNN_MPI": "0"}) is False
    assert mpi_requested({}) is None


def _cfg(batch=64, gbs=0, lr=0.1, scale=False):
    return SimpleNamespace(train=SimpleNamespace(batch_size=batch, global_batch_size=gbs),
                           optim=SimpleNamespace(lr=lr, scale_lr_by_world=scale))


def test_per_rank_batch_and_lr_scaling():
    assert per_rank_batch(_cfg(64), 4) == 64
    assert per_rank_batch(_cfg(64, gbs=256), 4) == 64
    assert per_rank_batch(_cfg(64, gbs=256), 2) == 128
    with pytest.raises(ConfigError, match="not divisible"):
        per_rank_batch(_cfg(gbs=100), 3)
    assert scaled_lr(_cfg(lr=0.1), 4) == 0.1
    assert scaled_lr(_cfg(lr=0.1, scale=True), 4) == pytest.approx(0.4)
    cfg = _cfg(64, gbs=256, lr=0.1, scale=True)
    text = apply_world_size(cfg, 4)
    assert cfg.train.batch_size == 64 and cfg.optim.lr == pytest.approx(0.4)
    assert "global batch 256" in text
    # a config without the new keys (before the lead adds them) still works
    old = SimpleNamespace(train=SimpleNamespace(batch_size=32), optim=SimpleNamespace(lr=0.1))
    assert per_rank_batch(old, 4) == 32 and scaled_lr(old, 4) == 0.1


def _model():
    from dtnn.models import build_model
    return build_model("simplecnn", (1, 8, 8), 3, filters=4, hidden=16)


@pytest.mark.parametrize("mb", [0, 1e-4, 1e-3, 4])
def test_buckets_are_contiguous_and_close_at_layer_boundaries(mb):
    m = _model()
    buckets = plan_buckets(m, max(1, int(mb * (1 << 20))))
    assert buckets[0][0] == 0 and buckets[-1][1] == m.flat_grads.size
    for (a, b, layer), nxt in zip(buckets, buckets[1:] + [None]):
        assert a < b
        if nxt is not None:
            assert nxt[0] == b and nxt[2] < layer  # later buckets close at earlier layers
        lo, hi = m.layer_param_range(layer)
        assert lo >= a and hi == b  # the closing layer ends the bucket
    with_params = [i for i in range(len(m.layers)) if m.layer_param_range(i)[1] > 0]
    if mb == 0:
        assert [l for _, _, l in buckets] == sorted(with_params, reverse=True)
    if mb == 4:
        assert len(buckets) == 1 and buckets[0][2] == min(with_params)


def test_replica_digest_sees_one_ulp():
    m = _model()
    d0 = replica_digest(m)
    m.flat_params[5] = np.nextafter(m.flat_params[5], np.float32(np.inf))
    assert replica_digest(m)[0] != d0[0]
