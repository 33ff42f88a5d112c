"""Exact resume on N processes: an interrupted run resumed from its checkpoint ends
with the same parameters, optimizer state, compressor state (every rank's) and dropout
streams (every rank's) as an uninterrupted one -- with dropout and augmentation too.
(One process: tests/engine/test_resume.py.)"""
import json
import os
import shutil
import tempfile

import numpy as np
import pytest

from ._helpers import assert_all

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(300, method="thread")]


@pytest.fixture(scope="module")
def ctx():
    from dtnn.parallel import get_context
    return get_context()


def _config(root, name, extra):
    from dtnn.config import load_config
    return load_config(None, [
        'data.source="synthetic"',
        "data.options={shape=[1,8,8],classes=3,n_train=192,n_test=24}",
        "train.batch_size=8", "train.epochs=3", "output.progress=false",
        "dist.min_compress_size=16", f'output.run_dir="{os.path.join(root, name)}"',
        # pinned: runs are compared bit for bit, bestof's tuning follows the clock
        'model.conv_algorithm="im2col"', *extra])


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return np.array_equal(a, b)


def _stop_after(monkeypatch, epochs):
    """Interrupt the run after ``epochs`` epochs (its config still says 3)."""
    from dtnn.engine.trainer import Trainer
    fit = Trainer.fit

    def short_fit(self, eval_set):
        self.epochs = epochs
        return fit(self, eval_set)

    monkeypatch.setattr(Trainer, "fit", short_fit)


@pytest.mark.parametrize("extra", [
    ["model.options={filters=4,hidden=16,dropout=0.3}", "data.augment_shift=1",
     "data.augment_flip=true"],
    ["model.options={filters=4,hidden=16,dropout=0.5}", "data.augment_shift=2",
     'dist.compress="topk:ratio=0.1"', 'optim.name="adam"', "optim.lr=0.01"],
    ["model.options={filters=4,hidden=16}", 'dist.compress="qsgd:bits=4"'],
    ["model.options={filters=4,hidden=16}", 'dist.compress="randomk:ratio=0.1"',
     "output.checkpoint_shards=false"],
], ids=["dropout+augment", "dropout+augment+topk+adam", "qsgd", "randomk-gathered"])
def test_resume_equals_uninterrupted_run(ctx, extra, monkeypatch):
    from dtnn.engine.session import train
    from dtnn.io.checkpoint import load_checkpoint

    root = ctx.broadcast_object(tempfile.mkdtemp(prefix="dtnn-resume-") if ctx.is_root
                                else None)
    try:
        train(_config(root, "full", extra), ctx)
        with monkeypatch.context() as m:
            _stop_after(m, 2)
            train(_config(root, "part", extra), ctx)
        ckpt = os.path.join(root, "part", "checkpoint.h5")
        train(_config(root, "part", extra), ctx, resume=ckpt)
        ctx.barrier()
        a = load_checkpoint(os.path.join(root, "full", "checkpoint.h5"))
        b = load_checkpoint(ckpt)
        assert_all(a.epoch == b.epoch == 3 and a.step == b.step, "same position")
        assert_all(np.array_equal(a.model.flat_params, b.model.flat_params), "parameters")
        for key, value in a.states["optimizer"].items():
            assert_all(np.array_equal(value, b.states["optimizer"][key]), f"optimizer {key}")
        rng_a, rng_b = a.states["rng"], b.states["rng"]
        assert_all(rng_a["world_size"] == ctx.size and f"rank{ctx.size - 1}" in rng_a,
                   "every rank's RNG saved")
        mine = f"rank{ctx.rank}"
        assert_all(rng_a[mine] == rng_b[mine], f"{mine}'s dropout stream")
        if "dropout" in extra[0] and "0.3" in extra[0]:  # the streams really differ by rank
            assert_all(len(set(rng_a[f"rank{r}"] for r in range(ctx.size))) == ctx.size,
                       "per-rank streams")
        if "compressor" in a.states:
            ca, cb = a.states["compressor"][mine], b.states["compressor"][mine]
            assert_all(_same(ca, cb), f"{mine}'s compressor state")
        metrics = [json.loads(l)["epoch"] for l in open(os.path.join(root, "part",
                                                                    "metrics.jsonl"))]
        assert_all(metrics == [1, 2, 3], "metrics.jsonl", str(metrics))
    finally:
        ctx.barrier()
        if ctx.is_root:
            shutil.rmtree(root, ignore_errors=True)


def test_sharded_and_gathered_checkpoints_hold_the_same_compressor_state(ctx):
    """output.checkpoint_shards: every rank's error-feedback memory in its own shard
    file, listed by the checkpoint, reads back (load_checkpoint) exactly as the
    gathered layout of the same run; the checkpoint holds no rank's memory itself and
    only the last save's shards are kept."""
    import h5py
    from dtnn.engine.session import train
    from dtnn.io import shards as S
    from dtnn.io.checkpoint import load_checkpoint
    from dtnn.io.hdf5tree import read_tree

    root = ctx.broadcast_object(tempfile.mkdtemp(prefix="dtnn-shards-") if ctx.is_root
                                else None)
    extra = ["model.options={filters=4,hidden=16}", 'dist.compress="randomk:ratio=0.1"',
             "train.epochs=2", 'output.keep_best="eval_accuracy"']
    try:
        train(_config(root, "sharded", extra), ctx)
        train(_config(root, "gathered", extra + ["output.checkpoint_shards=false"]), ctx)
        ctx.barrier()
        for name in ("checkpoint.h5", "best.h5"):
            path = os.path.join(root, "sharded", name)
            with h5py.File(path, "r") as f:
                stored = sorted(read_tree(f["states/compressor"]))
            assert_all(stored == ["shards", "spec", "steps_done", "world_size"],
                       f"{name}: only the shard list is stored", str(stored))
            a = load_checkpoint(path)
            b = load_checkpoint(os.path.join(root, "gathered", name))
            assert_all(a.step == b.step, "same step")
            files = sorted(os.listdir(S.shard_dir(path)))
            assert_all(files == sorted(S.shard_name(a.step, r) for r in range(ctx.size)),
                       f"{name}: one shard per rank, the last save only", str(files))
            assert_all(np.array_equal(a.model.flat_params, b.model.flat_params), "parameters")
            ca, cb = a.states["compressor"], b.states["compressor"]
            assert_all(ca.keys() == cb.keys() and all(_same(ca[k], cb[k]) for k in ca),
                       f"{name}: same compressor state, every rank's")
    finally:
        ctx.barrier()
        if ctx.is_root:
            shutil.rmtree(root, ignore_errors=True)
