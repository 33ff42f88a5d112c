"""The optional last phase of a pruning run: fine-tune the pruned model for up to
``prune.final_epochs`` epochs with the ordinary trainer and its evaluation monitor --
``output.keep_best`` (best.h5, and pruned.h5 is then the best model),
``train.early_stopping_patience`` and the plateau lr reduction
(``schedule.plateau_patience``), with a constant or decaying lr from ``prune.lr``
(``prune.final_schedule``) -- on the evaluation split (``data.val_fraction`` > 0
holds out a validation set; otherwise the test set, said in the log).

It starts from the state saved after the last pruning step, with dropout reseeded from
(seed, rank), so a run interrupted during this phase and resumed repeats it to the same
result."""
from __future__ import annotations

import os
from typing import Any, Dict

from dtnn.log import get_logger


def _schedule_options(cfg, name: str) -> Dict[str, Any]:
    """The [schedule] options that the final phase's schedule ``name`` takes."""
    s = cfg.schedule
    return {"constant": {}, "cosine": {"min_lr": s.min_lr},
            "step": {"step_size": s.step_size, "gamma": s.gamma},
            "multistep": {"milestones": s.milestones, "gamma": s.gamma}}[name]


def final_finetune(pruner, run_dir: str) -> Dict[str, Any]:
    """Fine-tune ``pruner.model`` in place; returns the measurement record."""
    from dtnn.engine.monitor import from_config
    from dtnn.engine.trainer import Trainer
    from dtnn.io.checkpoint import restore_into, save_checkpoint
    from dtnn.optim import build_optimizer
    from dtnn.optim.schedules import build_schedule

    cfg, ctx, p = pruner.cfg, pruner.ctx, pruner.cfg.prune
    log = get_logger()
    o = cfg.optim
    optimizer = build_optimizer("sgd", pruner.model, lr=p.lr, momentum=o.momentum,
                                nesterov=o.nesterov, weight_decay=o.weight_decay)
    schedule = build_schedule(p.final_schedule, p.lr, pruner.loader.steps_per_epoch,
                              epochs=p.final_epochs, **_schedule_options(cfg, p.final_schedule))
    monitor = from_config(cfg)
    monitor.min_lr_factor = cfg.schedule.min_lr / p.lr
    best = os.path.join(run_dir, "best.h5")

    def on_epoch_end(trainer, record):
        if ctx.is_root and (record.get("events") or {}).get("best"):
            save_checkpoint(best, pruner.model, step=trainer.state.step,
                            epoch=trainer.state.epoch, meta=pruner.meta)

    from dtnn.layers.loss import SoftmaxCrossEntropy
    from dtnn.parallel.optimizer import DistributedOptimizer
    step = DistributedOptimizer(   # the exchange from the run's [dist] options
        optimizer, pruner.model, ctx=ctx, options=cfg.dist, broadcast=False,
        loss=SoftmaxCrossEntropy(label_smoothing=cfg.train.label_smoothing))
    trainer = Trainer(pruner.model, step, schedule, pruner.loader, ctx,
                      epochs=p.final_epochs, eval_batch_size=cfg.train.eval_batch_size,
                      progress=cfg.output.progress, on_epoch_end=on_epoch_end,
                      monitor=monitor)
    pruner.model.reseed_rngs(p.seed, 1 << 30 | ctx.rank)
    if pruner.data.eval is pruner.data.test:
        log.info("final fine-tuning evaluates on the test set (set data.val_fraction to "
                 "hold out a validation set)")
    trainer.fit(pruner.data.eval)
    ctx.barrier()
    if cfg.output.keep_best and os.path.exists(best):
        restore_into(best, pruner.model, rng=False)
        log.info(f"keeping the best fine-tuned model ({cfg.output.keep_best} = "
                 f"{monitor.keep_best.best:.4f}) from {best}")
    pruner.optimizer, pruner.trainer = optimizer, trainer
    record = pruner.measure(removed=0)
    record.update(phase="final", final_epochs=trainer.state.epoch,
                  early_stopped=bool(trainer.early_stopped))
    return record
