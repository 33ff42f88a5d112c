"""``run_prune``: a pruning run from a checkpoint to ``RUN_DIR/pruned.h5``.

Run directory (written by rank 0)::

    config.toml       the resolved configuration, with its [prune] section
    prune.jsonl       one JSON object per pruning step (step 0 = the unpruned model):
                      maps/units per layer, parameters, MB, FLOPs, test accuracy,
                      macro-F1, batch-1 latency, fine-tuning loss
    prune.csv         the same, flat
    prune_state.h5    the model and loop state after the last step (for --resume)
    pruned.h5         the final model: an ordinary dtnn checkpoint
    prune_curves.png  accuracy vs parameters / FLOPs / latency
    maps_per_layer.png  feature maps (and units) kept per layer, before and after
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any, Dict, Optional

from dtnn.errors import ConfigError, UserError
from dtnn.log import get_logger
from dtnn.prune.loop import RESULT_FILE, STATE_FILE, Pruner, PruneState, check_prunable


def _save_state(pruner: Pruner, path: str) -> None:
    from dtnn.io.checkpoint import save_checkpoint
    state = asdict(pruner.state)
    tree = {"state": json.dumps(state)}
    save_checkpoint(path, pruner.model, step=pruner.state.iterations, epoch=0,
                    states={"prune": tree}, meta=pruner.meta)


def _load_state(path: str):
    from dtnn.io.checkpoint import load_checkpoint
    ckpt = load_checkpoint(path)
    raw = ckpt.states.get("prune", {}).get("state")
    if raw is None:
        raise UserError(f"{path}: not a prune state file (no 'prune' state)")
    return ckpt, PruneState(**json.loads(raw))


def run_prune(cfg, ctx, checkpoint: str, resume: bool = False) -> Dict[str, Any]:
    """Prune the model of ``checkpoint`` as ``cfg.prune`` says; returns the records."""
    from dtnn import __version__
    from dtnn.config import to_toml
    from dtnn.engine.session import load_data
    from dtnn.io.checkpoint import load_checkpoint
    from dtnn.io.jsonl import JsonlWriter

    log = get_logger()
    cfg.prune.validate()
    run_dir = cfg.output.run_dir
    state_path = os.path.join(run_dir, STATE_FILE)
    state: Optional[PruneState] = None
    if resume:
        if not os.path.exists(state_path):
            raise UserError(f"--resume: {state_path} not found (nothing to resume)")
        ckpt, state = _load_state(state_path)
    else:
        ckpt = load_checkpoint(checkpoint)
        if ctx.is_root and os.path.exists(os.path.join(run_dir, "prune.jsonl")):
            raise UserError(f"run directory {run_dir} already holds a pruning run: use "
                            f"--resume to continue it or another --run-dir")
    model = ckpt.model
    check_prunable(model, cfg)
    data = load_data(cfg, ckpt.meta.get("normalization"))
    if data.train.x.shape[1:] != model.input_shape:
        raise UserError(f"{checkpoint}: model expects inputs {model.input_shape}, data has "
                        f"{data.train.x.shape[1:]}")
    meta = dict(ckpt.meta)
    meta.update(config=cfg.to_dict(), dtnn_version=__version__, classes=data.train.classes,
                normalization=data.normalization)
    pruner = Pruner(cfg, ctx, model, data, meta, run_dir, state)
    active = ctx.is_root
    if active:
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, "config.toml"), "w") as fh:
            fh.write(to_toml(cfg))
    writer = JsonlWriter(os.path.join(run_dir, "prune.jsonl")) if active else None
    if state is None:
        record = pruner.measure(removed=0)
        pruner.state.records.append(record)
        if writer:
            writer.write(record)
        log.info(_describe(record))
    else:
        log.info(f"resuming {state_path} after pruning step {state.step}")
    while not pruner.state.done:
        record = pruner.step()
        if writer:
            writer.write(record)
            _save_state(pruner, state_path)
        log.info(_describe(record))
    if cfg.prune.final_epochs and not pruner.state.final_done:
        from dtnn.prune.final import final_finetune
        record = final_finetune(pruner, run_dir)
        pruner.state.records.append(record)
        pruner.state.final_done = True
        if writer:
            writer.write(record)
            _save_state(pruner, state_path)
        log.info("after final fine-tuning: " + _describe(record))
    result = os.path.join(run_dir, RESULT_FILE)
    if active:
        _write_result(pruner, ckpt, result)
        from dtnn.prune.report import write_reports
        write_reports(run_dir, pruner.state.records)
        log.info(f"pruned model written to {result}")
    ctx.barrier()
    return {"records": pruner.state.records, "pruned": result}


def _write_result(pruner: Pruner, ckpt, path: str) -> None:
    """An ordinary checkpoint: ``train --resume`` continues from the fine-tuning
    optimizer's state at the original checkpoint's epoch and step counts."""
    from dtnn.io.checkpoint import save_checkpoint
    original = pruner.state.original
    meta = dict(pruner.meta, prune={"criterion": pruner.cfg.prune.criterion,
                                    "source": os.path.abspath(ckpt.path),
                                    "original": original,
                                    "steps": pruner.state.step})
    history = ckpt.states.get("history", {"records": "[]"})
    save_checkpoint(path, pruner.model, step=ckpt.step, epoch=ckpt.epoch,
                    states={"optimizer": pruner.optimizer.state_dict(), "history": history},
                    meta=meta)


def _describe(r: Dict[str, Any]) -> str:
    text = (f"prune step {r['step']}: {r['maps']} maps, {r['dense_units']} dense units, "
            f"{r['params']:,} params ({r['mb']:.2f} MB), {r['flops'] / 1e6:.1f} MFLOPs")
    if "test_accuracy" in r:
        text += f" | test acc {r['test_accuracy']:.4f} macro-F1 {r['test_macro_f1']:.4f}"
    if r.get("latency_b1_ms") is not None:
        text += f" | batch-1 {r['latency_b1_ms']:.2f} ms"
    return text
