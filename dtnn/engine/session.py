"""Builds a training run from a ``Config``: data, model, optimizer, schedule, trainer,
and writes the run directory (config, metrics, checkpoints, reports, plots).

Run directory layout (written by rank 0)::

    config.toml      the resolved configuration (re-run with --config)
    model.txt        the model table: layers, output shapes, parameter counts
    metrics.jsonl    one JSON object per epoch (plus one per evaluation, ``"event":
                     "eval"``, with train.evals_per_epoch > 1 or train.target_accuracy)
    checkpoint.h5    the latest checkpoint (HDF5; resume with --resume)
    best.h5          the checkpoint of the best evaluation so far (output.keep_best)
    report.json      final test metrics: accuracy, per-class and macro P/R/F1, confusion
    confusion.txt    the confusion matrix as a table
    curves.png       loss/accuracy curves
"""
from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from dtnn import __version__
from dtnn.config import Config, apply_dict, to_toml
from dtnn.data import Augment, BatchLoader, Dataset, load_splits
from dtnn.engine import resume as resumed
from dtnn.data.images import ink_profile
from dtnn.engine.monitor import from_config as monitor_from_config
from dtnn.engine.guard import DivergenceGuard
from dtnn.engine import steptrace
from dtnn.engine.preflight import check_train
from dtnn.engine.rundir import RunDirectory
from dtnn.engine.trainer import Trainer
from dtnn.errors import ConfigError
from dtnn.engine.evaluate import Evaluation, evaluate
from dtnn.io.checkpoint import load_checkpoint, read_meta, save_checkpoint
from dtnn.io.ckptwriter import BackgroundWriter, ModelSnapshot, copy_tree
from dtnn.io.jsonl import JsonlWriter
from dtnn.io.shards import KEY, remove_other_steps, shard_dir, write_shard
from dtnn.io.shards import record as shard_record
from dtnn.log import get_logger
from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.metrics import format_report
from dtnn.models import Model, build_model
from dtnn.parallel.optimizer import DistributedOptimizer
from dtnn.optim import OPTIMIZERS, build_optimizer
from dtnn.optim.schedules import build_schedule


@dataclass
class Datasets:
    train: Dataset
    eval: Optional[Dataset]   # evaluated after every epoch (validation split, else test)
    test: Optional[Dataset]   # final report
    normalization: Optional[Dict[str, Any]]


def load_data(cfg: Config, normalization: Optional[Dict[str, Any]] = None) -> Datasets:
    """The ``[data]`` section's datasets (``dtnn.data.load_splits``); ``normalization``
    (from a checkpoint) is applied instead of fresh training-set statistics."""
    d = cfg.data
    s = load_splits(d.source, d.path or None, normalize_inputs=d.normalize,
                    val_fraction=d.val_fraction, seed=cfg.train.seed,
                    normalization=normalization, **d.options)
    return Datasets(s.train, s.val if s.val is not None else s.test, s.test, s.normalization)


def _accepted(fn, values: Dict[str, Any]) -> Dict[str, Any]:
    params = inspect.signature(fn).parameters
    return {k: v for k, v in values.items() if k in params}


def make_optimizer(cfg: Config, model: Model):
    o = cfg.optim
    options = {"weight_decay": o.weight_decay, "momentum": o.momentum, "nesterov": o.nesterov,
               "betas": tuple(o.betas), "eps": o.eps}
    cls = OPTIMIZERS.get(o.name)
    return build_optimizer(o.name, model, lr=o.lr, **_accepted(cls.__init__, options))


def make_model(cfg: Config, data: Datasets) -> Model:
    """A fresh model of ``cfg.model`` for ``data``'s input shape and classes."""
    opts = dict(cfg.model.options)
    opts.setdefault("conv_algorithm", cfg.model.conv_algorithm)
    return build_model(cfg.model.name, data.train.x.shape[1:], len(data.train.classes),
                       seed=cfg.train.seed, **opts)


def make_distributed_optimizer(cfg: Config, model: Model, ctx,
                               broadcast: bool = True) -> DistributedOptimizer:
    """The run's optimizer behind its gradient exchange (``cfg.dist``, resolved once by
    config.validate); ``broadcast`` starts every replica from rank 0's state."""
    return DistributedOptimizer(
        make_optimizer(cfg, model), model, ctx=ctx, options=cfg.dist,
        loss=SoftmaxCrossEntropy(label_smoothing=cfg.train.label_smoothing),
        broadcast=broadcast)


def make_schedule(cfg: Config, steps_per_epoch: int, epochs: Optional[int] = None):
    """The configured schedule over ``epochs`` (default ``train.epochs``) epochs of
    ``steps_per_epoch`` optimizer steps (the steps actually taken per epoch)."""
    s = cfg.schedule
    options = {"step_size": s.step_size, "gamma": s.gamma, "milestones": list(s.milestones),
               "min_lr": s.min_lr}
    keep = {"step": ("step_size", "gamma"), "multistep": ("milestones", "gamma"),
            "cosine": ("min_lr",), "constant": ()}.get(s.name)
    if keep is None:
        raise ConfigError(f"unknown schedule '{s.name}' (choose from: constant, cosine, "
                          "multistep, step)")
    options = {k: options[k] for k in keep}
    if s.warmup_epochs > 0:
        options["warmup_epochs"] = s.warmup_epochs
    return build_schedule(s.name, cfg.optim.lr, steps_per_epoch,
                          cfg.train.epochs if epochs is None else epochs, **options)


def make_guard(cfg: Config, ctx, num_classes: int, steps_per_epoch: int = 1) -> DivergenceGuard:
    """The divergence and dead-network guard; its step counts from epochs."""
    steps = max(1, int(steps_per_epoch))
    dead = cfg.train.dead_network_epochs
    return DivergenceGuard(ctx, num_classes, factor=cfg.train.divergence_loss,
                           dead_steps=math.ceil(dead * steps) if dead > 0 else 0,
                           warmup_steps=math.ceil(cfg.schedule.warmup_epochs * steps))


def make_loader(cfg: Config, train: Dataset, ctx) -> BatchLoader:
    augment = None
    if cfg.data.augment_shift or cfg.data.augment_flip:
        augment = Augment(shift=cfg.data.augment_shift, flip=cfg.data.augment_flip,
                          seed=cfg.train.seed)
    return BatchLoader(train, cfg.train.batch_size, shuffle=True, seed=cfg.train.seed,
                       drop_last=True, rank=ctx.rank, world_size=ctx.size, augment=augment)


def config_from_checkpoint(path: str) -> Config:
    """The training config saved in checkpoint ``path`` (reads only its metadata)."""
    return config_from_meta(read_meta(path), path)


def config_from_meta(meta: Dict[str, Any], path: str) -> Config:
    """The training config inside a checkpoint's ``meta`` (``path`` names the file in
    errors)."""
    saved = meta.get("config")
    if not saved:
        raise ConfigError(f"{path}: checkpoint has no saved training config")
    return apply_dict(Config(), saved, path)


def train(cfg: Config, ctx, resume: Optional[str] = None,
          overwrite: bool = False) -> Dict[str, Any]:
    """Train as ``cfg`` says (see the module docstring).  ``resume``: continue from
    this checkpoint (``dtnn.engine.resume``); ``overwrite``: start afresh in a
    non-empty run directory (``dtnn.engine.rundir``).  Under MPI, collective; a
    failure, interrupt, stall or early exit of any rank ends the whole job
    (``dtnn.parallel.failure.protect_job``)."""
    from dtnn.parallel.failure import protect_job
    with protect_job(ctx, cfg.dist.stall_timeout):   # cfg.dist: resolved by the config
        return _train(cfg, ctx, resume, overwrite)


def _train(cfg: Config, ctx, resume: Optional[str], overwrite: bool) -> Dict[str, Any]:
    log = get_logger()
    # everything that can be checked before the data loads, and nothing written yet
    check_train(cfg, resume=resume, overwrite=overwrite, is_root=ctx.is_root)
    steptrace.check_env()   # DTNN_STEP_TRACE never overwrites an earlier trace
    ckpt = load_checkpoint(resume) if resume else None
    if ckpt is not None:
        resumed.check_config(cfg, ckpt.meta.get("config") or {}, resume)
        resumed.check_epochs(resume, cfg.train.epochs, ckpt.epoch)
    import dtnn.tune
    dtnn.tune.configure(cfg.tune.options(), comm=ctx)
    data = load_data(cfg, ckpt.meta.get("normalization") if ckpt else None)
    if ckpt is not None:
        resumed.check_data(resume, ckpt.model, ckpt.meta.get("classes"), data)
        model = ckpt.model
    else:
        model = make_model(cfg, data)
    loader = make_loader(cfg, data.train, ctx)
    # a fresh run starts every replica from rank 0's state, a resumed one from the file
    optimizer = make_distributed_optimizer(cfg, model, ctx, broadcast=ckpt is None)
    steps = loader.steps_per_epoch
    if cfg.train.max_steps_per_epoch:
        steps = min(steps, cfg.train.max_steps_per_epoch)
    saved_plan = None
    if ckpt is not None:  # checkpoints before the plan was saved: planned as configured
        saved_plan = ckpt.meta.get("schedule") or resumed.plan_schedule(
            lambda e, n: None, int((ckpt.meta.get("config") or {}).get("train", {}).get(
                "epochs", cfg.train.epochs)), steps)[1]
    schedule, schedule_plan = resumed.plan_schedule(
        lambda epochs, n: make_schedule(cfg, n, epochs), cfg.train.epochs, steps, saved_plan,
        ckpt.step if ckpt else 0, ckpt.epoch if ckpt else 0)
    run = RunDirectory(cfg.output.run_dir, ctx.is_root)
    metrics = None

    meta = {"config": cfg.to_dict(), "dtnn_version": __version__, "classes": data.train.classes,
            "normalization": data.normalization, "processes": ctx.size,
            "schedule": schedule_plan,
            "ink": ink_profile(data.train.x, data.normalization)}  # for predict/serve

    monitor = monitor_from_config(cfg)
    writer = BackgroundWriter()   # rank 0's checkpoint writes (output.checkpoint_background)

    def on_epoch_end(trainer: Trainer, record: Dict[str, Any]) -> None:
        events = record.get("events") or {}
        record = {k: v for k, v in record.items() if k not in ("evaluation", "events")}
        if trainer.reducer is not None:  # gradient exchange: timing split, bytes sent
            record["exchange"] = trainer.reducer.stats()
        every = cfg.output.checkpoint_every
        last = trainer.state.epoch == trainer.epochs or trainer.stopped or trainer.early_stopped
        save = last or bool(every and trainer.state.epoch % every == 0) or events.get("best")
        names = ("checkpoint.h5", "best.h5") if events.get("best") else ("checkpoint.h5",)
        # optimizer + compressor: each rank's error-feedback memory goes to its own
        # shard file (dtnn.io.shards), not through rank 0's link
        sharded = cfg.output.checkpoint_shards
        states = optimizer.state_dict(gather=not sharded) if save else None
        shards = (_write_shards(run, names, states, trainer.state.step, ctx)
                  if save and sharded else {})
        rng = resumed.gather_rng(ctx, model) if save else None  # every rank's dropout
        if ctx.is_root and save:
            states["history"] = {"records": json.dumps(trainer.state.history)}
            if not states.get("compressor"):
                states.pop("compressor", None)
            states["rng"] = rng
            states["monitor"] = {"state": json.dumps(monitor.state_dict())}
            step, epoch = trainer.state.step, trainer.state.epoch

            def commit(source, states: Dict[str, Any]) -> None:
                for name in names:   # (best.h5: output.keep_best)
                    st = dict(states, compressor=shards[name]) if name in shards else states
                    try:
                        save_checkpoint(run.file(name), source, step=step, epoch=epoch,
                                        states=st, meta=meta)
                    except OSError as exc:  # disk full, directory gone: one line
                        raise run.error(exc, run.file(name)) from None
                    if KEY in shards.get(name, {}):   # committed: earlier steps' shards go
                        remove_other_steps(run.file(name), shards[name][KEY])
                if metrics is not None:  # after its checkpoint: the record never runs ahead
                    metrics.write(record)

            if cfg.output.checkpoint_background:   # from a snapshot, training goes on
                snapshot = (ModelSnapshot(model), copy_tree(states))
                writer.submit(lambda: commit(*snapshot))
            else:
                writer.wait()
                commit(model, states)
            return
        if metrics is not None:
            writer.wait()   # the previous epoch's checkpoint and record first
            metrics.write(record)

    def on_eval(trainer: Trainer, record: Dict[str, Any]) -> None:
        # mid-epoch evaluations only matter for time-to-accuracy: keep metrics.jsonl
        # one line per epoch otherwise
        if metrics is not None and (cfg.train.evals_per_epoch > 1
                                    or cfg.train.target_accuracy > 0):
            writer.wait()   # the last epoch's record (written with its checkpoint) first
            metrics.write(record)

    trainer = Trainer(model, optimizer, schedule, loader, ctx, epochs=cfg.train.epochs,
                      max_steps_per_epoch=cfg.train.max_steps_per_epoch,
                      eval_batch_size=cfg.train.eval_batch_size,
                      progress=cfg.output.progress, on_epoch_end=on_epoch_end,
                      evals_per_epoch=cfg.train.evals_per_epoch,
                      target_accuracy=cfg.train.target_accuracy,
                      stop_at_target=cfg.train.stop_at_target, on_eval=on_eval,
                      monitor=monitor,
                      clip_grad_norm=cfg.optim.clip_grad_norm,
                      guard=make_guard(cfg, ctx, len(data.train.classes), steps))
    if ckpt is not None:
        optimizer.load_state_dict(ckpt.states)
        trainer.state.epoch, trainer.state.step = ckpt.epoch, ckpt.step
        trainer.state.history = json.loads(ckpt.states.get("history", {}).get("records", "[]"))
        if "monitor" in ckpt.states:
            monitor.load_state_dict(json.loads(ckpt.states["monitor"]["state"]))
        resumed.restore_rng(ctx, model, ckpt.states.get("rng"), log)
        log.info(f"resumed from {resume} at epoch {ckpt.epoch}, step {ckpt.step}")

    # validated: the first write into the run directory
    run.prepare(overwrite=overwrite, resume_step=ckpt.step if ckpt else None)
    if run.active:
        metrics = JsonlWriter(run.file("metrics.jsonl"))
    run.write_text("config.toml", to_toml(cfg))
    run.write_text("model.txt", model.summary() + "\n")
    if ctx.is_root:
        log.info("\n" + model.summary())
        log.info(f"training on {len(data.train.y)} samples, {ctx.size} process(es), "
                 f"batch {cfg.train.batch_size} per process, {loader.steps_per_epoch} steps/epoch")
    try:
        history = trainer.fit(data.eval)
    except BaseException:
        writer.wait(raise_error=False)   # a write in flight completes (atomic either way)
        raise
    writer.wait()   # the last checkpoint is on disk before anything reads it
    if run.active:  # per-layer auto-tuning decisions (model.conv_algorithm = "bestof")
        from dtnn.tune.report import write_report
        write_report(run.path)
    result: Dict[str, Any] = {"history": history, "run_dir": cfg.output.run_dir}
    if data.test is not None:
        result["test"] = final_report(model, data.test, ctx, run,
                                      cfg.train.eval_batch_size).to_dict()
    if run.active:
        plot_curves(history, run.file("curves.png"))
    return result


def _write_shards(run: RunDirectory, names, states: Dict[str, Any], step: int,
                  ctx) -> Dict[str, Dict[str, Any]]:
    """Collective: every rank writes its compressor state as a shard of each checkpoint
    in ``names`` (``dtnn.io.shards``); rank 0 gets, per name, the ``compressor`` entry
    that lists them (the gather of the shard records also means they are all on disk
    before rank 0 commits the checkpoint).  ``{}`` without a compressor state."""
    part = states.get("compressor") or {}
    mine = part.get(f"rank{ctx.rank}")
    if mine is None:
        return {}
    header = {k: v for k, v in part.items() if not k.startswith("rank")}
    if not mine:   # no compressor memory (the same on every rank): as gathered
        empty = dict(header, **{f"rank{r}": {} for r in range(ctx.size)})
        return {name: empty for name in names} if ctx.is_root else {}
    records = {}
    for name in names:
        try:
            records[name] = write_shard(run.file(name), step, ctx.rank, ctx.size, mine)
        except OSError as exc:
            raise run.error(exc, shard_dir(run.file(name))) from None
    table = ctx.gather_object(records)
    if not ctx.is_root:
        return {}
    return {name: dict(header, **{KEY: shard_record(step, [t[name] for t in table])})
            for name in names}


def final_report(model: Model, test: Dataset, ctx, run: RunDirectory,
                 batch_size: int = 500) -> Evaluation:
    """Evaluate on the test set; rank 0 writes report.json and confusion.txt."""
    ev = evaluate(model, test, ctx, batch_size)
    if run.active:
        run.write_text("report.json", ev.to_json())
        run.write_text("confusion.txt", ev.confusion_table() + "\n")
        get_logger().info("test set:\n" + format_report(ev.report) + "\n" + ev.confusion_table())
    return ev


def plot_curves(history, path: str) -> None:
    """Loss and accuracy per epoch (matplotlib, headless)."""
    if not history:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, [r["train_loss"] for r in history], label="train")
    ax2.plot(epochs, [r["train_accuracy"] for r in history], label="train")
    if "eval_loss" in history[0]:
        ax1.plot(epochs, [r["eval_loss"] for r in history], label="eval")
        ax2.plot(epochs, [r["eval_accuracy"] for r in history], label="eval")
    for ax, name in ((ax1, "loss"), (ax2, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def load_for_inference(path: str) -> Tuple[Model, Dict[str, Any]]:
    ckpt = load_checkpoint(path)
    return ckpt.model, ckpt.meta
