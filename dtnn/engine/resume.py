"""What a resumed run continues, and what it refuses.

The checkpoint is authoritative for the model
    ``--resume CKPT`` trains the checkpoint's model, weights and optimizer state.  A
    config (``--config`` or ``--set``) naming another model (``model.name``,
    ``model.options``, ``model.conv_algorithm``) or other preprocessing
    (``data.normalize``) is a one-line error, found before any data is loaded; data
    whose sample shape, class count or class names differ from the checkpoint's is a
    one-line error before anything is written.

Learning-rate schedule
    The checkpoint records the schedule as planned: its epochs, steps per epoch, and
    any earlier stretch.  Resuming with the same ``train.epochs`` continues it exactly
    (the resumed run equals an uninterrupted one).  Changing ``train.epochs`` (or the
    steps per epoch) *stretches the remaining part* of that schedule over the new
    remaining steps: at resume step ``s0`` the schedule's own clock stands at ``t0``;
    step ``s >= s0`` gets the schedule's value at ``t0 + (s - s0) * r`` with
    ``r = (T - t0) / (S_new - s0)`` (``T`` its planned total, ``S_new`` the new last
    step).  The learning rate is continuous at the resume step and follows the same
    shape down to the same end value, never jumping back up (a cosine extended from
    epoch 10 to 20 at epoch 8 decays over 12 epochs instead of 2; a finished one stays
    at its final value).  Other explicit changes (``optim.lr``, ``schedule.*``) apply
    from the resume step on.  ``train.epochs`` must exceed the checkpoint's epoch.

Random streams
    Every rank's layer RNG state (dropout) is saved (``/states/rng``), as the
    compressor state already is, and restored on every rank when the number of
    processes is the same; augmentation and sample order derive from (seed, epoch,
    sample) alone.  So a resumed run equals an uninterrupted one on 1..N processes.
    With another number of processes the dropout streams start afresh (warned).
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from dtnn.errors import ConfigError, DataError

#: config keys that belong to the checkpoint on resume
MODEL_KEYS = (("model", "name"), ("model", "options"), ("model", "conv_algorithm"),
              ("data", "normalize"))


def check_config(cfg, saved: Dict[str, Any], path: str) -> None:
    """One-line ConfigError if ``cfg`` asks for another model than checkpoint ``path``
    (whose saved training config is ``saved``)."""
    for section, key in MODEL_KEYS:
        want = getattr(getattr(cfg, section), key)
        have = (saved.get(section) or {}).get(key, want)
        if _canon(want) != _canon(have):
            raise ConfigError(
                f"--resume {path}: the checkpoint was trained with {section}.{key} = "
                f"{_show(have)} but the config asks for {_show(want)}; a resumed run "
                "continues the checkpoint's model: drop the setting, or start a new run")


def check_data(path: str, model, classes: Optional[Sequence[str]], data) -> None:
    """One-line DataError if the loaded data cannot continue checkpoint ``path``."""
    shape = tuple(data.train.x.shape[1:])
    if shape != tuple(model.input_shape):
        raise DataError(f"--resume {path}: the model takes samples of shape "
                        f"{tuple(model.input_shape)} but data '{data.train.name}' has "
                        f"{shape}")
    n_out = int(model.output_shape[0])
    if len(data.train.classes) != n_out:
        raise DataError(f"--resume {path}: the model has {n_out} classes but data "
                        f"'{data.train.name}' has {len(data.train.classes)}")
    if classes and list(classes) != list(data.train.classes):
        raise DataError(f"--resume {path}: the checkpoint's classes "
                        f"{_short(classes)} differ from the data's {_short(data.train.classes)}")


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _short(names: Sequence[str]) -> str:
    names = list(names)
    return "[" + ", ".join(names[:5]) + (", ...]" if len(names) > 5 else "]")


# --- schedule -------------------------------------------------------------------------
class StretchedSchedule:
    """``inner`` on a piecewise-linear clock: from ``segments[i] = (step, time, rate)``
    on, step ``s`` reads ``inner`` at ``time + (s - step) * rate`` (linearly
    interpolated between whole steps)."""

    def __init__(self, inner, segments: List[Tuple[int, float, float]]):
        self.inner = inner
        self.segments = sorted((int(s), float(t), float(r)) for s, t, r in segments)

    def time_at(self, step: float) -> float:
        t = float(step)
        for s0, t0, rate in self.segments:
            if step >= s0:
                t = t0 + (step - s0) * rate
        return t

    def lr_at(self, step: int) -> float:
        t = self.time_at(step)
        lo = math.floor(t)
        frac = t - lo
        value = self.inner.lr_at(lo)
        if frac > 1e-12:
            value += frac * (self.inner.lr_at(lo + 1) - value)
        return value

    def __call__(self, step: int) -> float:
        return self.lr_at(step)

    def describe(self) -> str:
        last = self.segments[-1]
        return (f"{self.inner.describe()}, stretched from step {last[0]} "
                f"(x{1 / last[2] if last[2] else float('inf'):.3g} slower)")

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (copy, pickle)
            raise AttributeError(name)
        return getattr(self.inner, name)


def plan_schedule(build, epochs: int, steps_per_epoch: int,
                  saved: Optional[Dict[str, Any]] = None, step: int = 0,
                  epoch: int = 0) -> Tuple[Any, Dict[str, Any]]:
    """(schedule, record to save in the checkpoint's meta as ``"schedule"``).

    ``build(epochs, steps_per_epoch)`` makes the configured schedule.  ``saved`` is the
    record of the checkpoint resumed at ``step``/``epoch`` (None for a new run)."""
    if saved is None:
        return build(epochs, steps_per_epoch), {
            "epochs": epochs, "steps_per_epoch": steps_per_epoch, "segments": [],
            "end_step": epochs * steps_per_epoch}
    base_epochs, base_spe = int(saved["epochs"]), int(saved["steps_per_epoch"])
    segments = [tuple(s) for s in saved.get("segments", [])]
    new_end = step + (epochs - epoch) * steps_per_epoch
    record = {"epochs": base_epochs, "steps_per_epoch": base_spe, "end_step": new_end}
    if new_end != int(saved.get("end_step", base_epochs * base_spe)):
        probe = StretchedSchedule(None, segments)
        t0 = probe.time_at(step)
        total = base_epochs * base_spe
        rate = max(0.0, total - t0) / max(1, new_end - step)
        segments.append((step, t0, rate))
    record["segments"] = [list(s) for s in segments]
    inner = build(base_epochs, base_spe)
    return (StretchedSchedule(inner, segments) if segments else inner), record


def check_epochs(path: str, epochs: int, done: int) -> None:
    if epochs <= done:
        raise ConfigError(f"--resume {path}: the checkpoint has finished {done} epoch(s) and "
                          f"train.epochs = {epochs}: nothing to train; set train.epochs > "
                          f"{done} (--set train.epochs=N) to train longer")


# --- every rank's random streams ---------------------------------------------------------
def gather_rng(ctx, model) -> Dict[str, Any]:
    """Collective: every rank's layer RNG states, on rank 0 (``{}`` elsewhere)."""
    mine = json.dumps(model.rng_states(), sort_keys=True)
    table = ctx.gather_object(mine)
    if not ctx.is_root:
        return {}
    return {"world_size": ctx.size, **{f"rank{r}": s for r, s in enumerate(table)}}


def restore_rng(ctx, model, state: Optional[Dict[str, Any]], log) -> None:
    """This rank's saved RNG states, if the checkpoint has them for this world size."""
    if not state:
        return
    mine = state.get(f"rank{ctx.rank}")
    if int(state.get("world_size", -1)) != ctx.size or mine is None:
        log.warning(f"the checkpoint's dropout streams are for {state.get('world_size')} "
                    f"process(es), this run has {ctx.size}: they start afresh (the resumed "
                    "run is not bit-identical to an uninterrupted one)")
        return
    model.set_rng_states(json.loads(mine))
