"""Compressed gradient exchange under MPI: every compressor keeps the replicas
bit-identical while training simplecnn, the collective is picked per compressor,
overlap == blocking, warm-up == uncompressed, and checkpoint + resume with the
compressor state equals an uninterrupted run."""
import os
import shutil
import tempfile

import numpy as np
import pytest

from dtnn.data import Dataset
from dtnn.dist.mpi import MPIContext
from dtnn.models import build_model

from ._helpers import assert_all, gather_params, max_rel_diff, train_distributed

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]

SPECS = ["fp16", "fp16:accumulate=fp32", "bf16", "int8", "qsgd:bits=8", "terngrad", "sign",
         "topk:ratio=0.05", "topk:ratio=0.05,scope=global", "randomk:ratio=0.1",
         "powersgd:rank=2", "sign:ef=false", "qsgd:bits=4,ef=true"]
STEPS = 4
OPTS = {"min_compress_size": 64, "check_replicas": True}


@pytest.fixture(scope="module")
def ctx():
    return MPIContext()


def simplecnn(seed):
    return build_model("simplecnn", (1, 12, 12), 5, seed=seed, filters=4, hidden=16)


def images(n=256):
    rng = np.random.default_rng(99)
    y = rng.integers(0, 5, n)
    x = rng.standard_normal((n, 1, 12, 12)).astype(np.float32)
    x[np.arange(n), 0, y, y] += 3.0
    return Dataset(x, y, [str(c) for c in range(5)], name="tiny-images")


def _train(ctx, spec, **extra):
    opts = dict(OPTS, compress=spec, **extra)
    return train_distributed(ctx, simplecnn, images(), 8, STEPS, "sgd", opts)


@pytest.mark.parametrize("spec", SPECS)
def test_every_compressor_trains_with_identical_replicas(ctx, spec):
    model, _, reducer = _train(ctx, spec, bucket_mb=0.001)
    params = gather_params(model)
    assert_all(all(np.array_equal(p, params[0]) for p in params), f"{spec}: bit-identical")
    moved = max_rel_diff(model.flat_params, simplecnn(100).flat_params)
    assert_all(np.isfinite(model.flat_params).all() and moved > 1e-4, f"{spec}: trained",
               f"{moved:g}")
    s = reducer.stats()
    assert_all(s["steps"] == STEPS and 0 < s["sent_bytes"] < s["payload_bytes"] * 1.01,
               f"{spec}: bytes", str(s))


def test_collective_choice(ctx):
    model = simplecnn(0)
    for spec, summable in [("fp16", True), ("powersgd", True), ("randomk", True),
                           ("fp16:accumulate=fp32", False), ("topk", False), ("sign", False),
                           ("qsgd", False)]:
        reducer = ctx.make_reducer(model, {"compress": spec, "min_compress_size": 64})
        assert reducer.compressor.summable is summable, spec
        plans = [p for p in reducer.exchange.plans if p.unit is not None]
        assert all((p.recv is None) == summable for p in plans), spec


def test_fp16_close_to_uncompressed(ctx):
    a, _, _ = _train(ctx, "fp16")
    b, _, _ = _train(ctx, "none")
    err = max_rel_diff(a.flat_params, b.flat_params)
    assert_all(err < 1e-2, "fp16 ~ fp32", f"{err:.3g}")


def test_warmup_steps_are_uncompressed(ctx):
    a, _, ra = _train(ctx, "sign", compress_warmup_steps=STEPS)
    b, _, _ = _train(ctx, "none")
    assert_all(np.array_equal(a.flat_params, b.flat_params), "warm-up == plain exchange")
    assert_all(ra.stats()["compression_ratio"] == 1.0, "no compression during warm-up")
    c, _, _ = _train(ctx, "powersgd:start_step=2")
    assert_all(not np.array_equal(c.flat_params, b.flat_params), "compression after start")


@pytest.mark.parametrize("spec", ["topk:ratio=0.05", "qsgd:bits=4", "powersgd:rank=1"])
def test_overlap_equals_blocking(ctx, spec):
    a, _, _ = _train(ctx, spec, bucket_mb=0.001)
    b, _, _ = _train(ctx, spec, bucket_mb=0.001, mode="blocking")
    assert_all(np.array_equal(a.flat_params, b.flat_params), f"{spec}: overlap == blocking")


def _shared_tmpdir(ctx):
    path = tempfile.mkdtemp(prefix="dtnn-cx-") if ctx.rank == 0 else None
    return ctx.comm.bcast(path, root=0)


@pytest.mark.parametrize("spec", ["topk:ratio=0.05", "powersgd:rank=1", "qsgd:bits=4"])
def test_checkpoint_resume_continues_exactly(ctx, spec):
    from dtnn.config import explicit_dist_options, load_config
    from dtnn.engine.session import train
    from dtnn.io.checkpoint import load_checkpoint

    root = _shared_tmpdir(ctx)

    def cfg(name, epochs):
        return load_config(None, [
            'data.source="synthetic"',
            "data.options={shape=[1,10,10],classes=3,n_train=192,n_test=48}",
            "model.options={filters=4,hidden=16}", "train.batch_size=8",
            f"train.epochs={epochs}", "output.progress=false", 'schedule.name="constant"',
            f'dist.compress="{spec}"', "dist.min_compress_size=64",
            f'output.run_dir="{os.path.join(root, name)}"'])

    try:
        for name, epochs, resume in [("full", 2, None), ("part", 1, None),
                                     ("part", 2, os.path.join(root, "part", "checkpoint.h5"))]:
            c = cfg(name, epochs)
            ctx.configure(explicit_dist_options(c))
            train(c, ctx, resume=resume)
        ctx.barrier()
        full = load_checkpoint(os.path.join(root, "full", "checkpoint.h5"))
        part = load_checkpoint(os.path.join(root, "part", "checkpoint.h5"))
        assert_all(full.step == part.step, "same step")
        assert_all(np.array_equal(full.model.flat_params, part.model.flat_params),
                   f"{spec}: resumed == uninterrupted",
                   f"{max_rel_diff(full.model.flat_params, part.model.flat_params):.3g}")
        st = full.states["compressor"]
        assert_all(st["world_size"] == ctx.size and f"rank{ctx.size - 1}" in st,
                   "every rank's state saved")
    finally:
        ctx.configure({})
        ctx.barrier()
        if ctx.rank == 0:
            shutil.rmtree(root, ignore_errors=True)
