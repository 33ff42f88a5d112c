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
], ids=["dropout+augment", "dropout+augment+topk+adam", "qsgd"])
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
