"""Recipes under MPI: gradient clipping after the exchange keeps replicas identical,
a divergence on one rank stops every rank at the same step, so does a dead network,
lr-find runs data-parallel and every rank gets the same curve and suggestion."""
import numpy as np
import pytest

from dtnn.config import load_config
from dtnn.data import BatchLoader
from dtnn.engine.guard import DivergenceGuard
from dtnn.engine.trainer import Trainer
from dtnn.errors import TrainingDiverged
from dtnn.optim import build_optimizer, grad_norm
from dtnn.optim.schedules import build_schedule

from ._helpers import assert_all, assert_same_everywhere, dataset, dense_net, gather_params

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(180, method="thread")]


@pytest.fixture(scope="module")
def ctx():
    from dtnn.parallel.mpi import MPIContext
    return MPIContext()


def _trainer(ctx, ds, clip=0.0, guard=None, lr=0.05, options=None):
    model = dense_net(100)
    opt = build_optimizer("sgd", model, lr=lr, momentum=0.9, nesterov=True)
    if options is not None:   # the run's [dist] options, as dtnn train passes them
        from dtnn.parallel import DistributedOptimizer
        opt = DistributedOptimizer(opt, model, ctx=ctx, options=options, broadcast=False)
    loader = BatchLoader(ds, 8, seed=7, rank=ctx.rank, world_size=ctx.size)
    sched = build_schedule("constant", lr, loader.steps_per_epoch)
    trainer = Trainer(model, opt, sched, loader, ctx, epochs=1, progress=False,
                      clip_grad_norm=clip, guard=guard)
    ctx.sync_model(model, trainer.optimizer)
    return trainer, loader


def test_clipping_after_the_exchange_keeps_replicas_identical(ctx):
    trainer, loader = _trainer(ctx, dataset("dense"), clip=0.05)
    norms = []
    for i, (xb, yb) in enumerate(loader.epoch(0)):
        if i == 6:
            break
        trainer.train_step(xb, yb)
        norms.append(grad_norm(trainer.model.flat_grads))
    # every step was clipped (the norm is at most 0.05 after it) and all ranks agree
    assert_all(max(norms) <= 0.05 * (1 + 1e-4), "gradients clipped", f"{max(norms):g}")
    params = gather_params(trainer.model)
    assert_all(all(np.array_equal(p, params[0]) for p in params), "replicas bit-identical")
    trainer.reducer.check_replicas()


DEFER = {"defer_update": True, "bucket_mb": 0.0002, "tune": "false"}


@pytest.mark.parametrize("options", [None, DEFER, dict(DEFER, compress="randomk:ratio=0.5",
                                                       min_compress_size=16)])
def test_nan_on_one_rank_stops_every_rank_at_the_same_step(ctx, options):
    """With dist.defer_update the guard checks each bucket in the next forward, before
    that bucket's update: every rank stops one train_step later, naming the same step."""
    ds = dataset("dense")
    later = int(options is not None)
    # (a window of 4 would end on the NaN step: its loss check would stop the deferred
    # run first, in the same train_step)
    trainer, loader = _trainer(ctx, ds, guard=DivergenceGuard(ctx, 5, window=50 if later else 4),
                               options=options)
    stopped_at, message = None, ""
    for i, (xb, yb) in enumerate(loader.epoch(0)):
        if i == 5:
            break
        if i == 3 and ctx.rank == ctx.size - 1:
            xb = xb.copy()
            xb[0, 0] = np.nan          # one bad sample on the last rank only
        try:
            with np.errstate(invalid="ignore", over="ignore"):
                trainer.train_step(xb, yb)
        except TrainingDiverged as exc:
            stopped_at, message = i, str(exc)
            trainer.distributed.discard()   # what Trainer.fit does (every rank)
            break
    assert_same_everywhere(stopped_at, "step at which each rank stopped")
    assert_all(stopped_at == 3 + later and "no longer finite" in message
               and "at step 3:" in message, "stopped on the NaN step", f"{stopped_at} {message}")
    assert_all(np.isfinite(trainer.model.flat_params).all(), "no NaN reached the weights")


def test_guard_on_keeps_the_deferred_step(ctx):
    """dtnn train's default (the guard on) no longer forces the synchronous step: the
    deferred run leaves every step pending and ends with the same bits."""
    ds = dataset("dense")
    out = {}
    for defer in (False, True):
        trainer, loader = _trainer(ctx, ds, guard=DivergenceGuard(ctx, 5, window=4),
                                   options=dict(DEFER, defer_update=defer))
        pending = []
        for i, (xb, yb) in enumerate(loader.epoch(0)):
            if i == 6:
                break
            trainer.train_step(xb, yb)
            pending.append(trainer.reducer.pending)
        trainer.distributed.flush()
        out[defer] = (trainer.model.flat_params.copy(), pending)
    assert_all(all(out[True][1]) and not any(out[False][1]), "deferred with the guard on",
               str(out[True][1]))
    assert_all(np.array_equal(out[True][0], out[False][0]), "same bits as synchronous")


def test_exploding_loss_is_one_decision(ctx):
    ds = dataset("dense")
    guard = DivergenceGuard(ctx, 5, factor=3.0, window=3)
    # rank-dependent losses whose global mean explodes: every rank must raise together
    raised = []
    for step in range(3):
        try:
            guard.add_loss(1.0 if ctx.rank else 40.0 * ctx.size, step, 0.1)
        except TrainingDiverged:
            raised.append(step)
    assert_same_everywhere(raised, "steps at which the guard fired")
    assert_all(raised == [2], "fired at the end of the window", str(raised))


def test_dead_network_is_one_decision(ctx):
    # the last rank alone sees input-independent logits: the all-reduced spread is not
    # near zero and nobody stops; when every rank's are, all stop at the same step
    from dtnn.errors import TrainingStalled
    base = np.linspace(-1.0, 1.0, 5)
    for all_dead in (False, True):
        guard = DivergenceGuard(ctx, 5, window=3, dead_steps=6)
        raised = []
        for step in range(1, 13):
            dead = all_dead or ctx.rank == ctx.size - 1
            noise = np.random.default_rng(100 * step + ctx.rank).standard_normal((8, 5))
            try:
                guard.add_loss(np.log(5.0), step, 0.1, 2, base + (0.0 if dead else 0.5) * noise)
            except TrainingStalled:
                raised.append(step)
                break
        assert_same_everywhere(raised, f"steps at which the dead check fired ({all_dead})")
        assert_all(raised == ([6] if all_dead else []), "one collective decision", str(raised))


def test_lr_find_is_data_parallel_and_identical_on_every_rank(ctx):
    from dtnn.engine.lr_find import lr_find
    cfg = load_config(None, ["data.source=digits", "model.options.filters=8",
                             "train.global_batch_size=32"])
    result = lr_find(cfg, ctx, steps=40, end_lr=3.0)
    assert_same_everywhere((result.steps, result.suggested_lr, result.losses[-1]),
                           "lr-find result")
    assert_all(result.suggested_lr is not None and result.steps >= 20, "a suggestion",
               str(result.suggested_lr))


def test_diverging_cli_run_is_reported_once_by_rank_0(ctx, tmp_path_factory, capfd):
    from dtnn.cli.main import main
    run_dir = ctx.broadcast_object(str(tmp_path_factory.mktemp("diverge")))
    status = main(["train", "--set", "data.source=digits", "--set", "train.epochs=1",
                   "--set", "optim.lr=1e4", "--set", "output.progress=false",
                   "--run-dir", run_dir])
    err = capfd.readouterr().err
    lines = [l for l in err.splitlines() if "error" in l.lower() or "Warning" in l]
    expected = 1 if ctx.rank == 0 else 0
    assert_all(status == 2, "every rank exits with status 2", str(status))
    assert_all(len(lines) == expected and all("training diverged" in l for l in lines),
               "one line, from rank 0 only", repr(lines))
