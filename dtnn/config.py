"""One typed configuration: dataclasses, a TOML file, and ``--set a.b=v`` overrides.

Every run writes the resolved configuration next to its outputs (``config.toml``), so
``dtnn train --config runs/x/config.toml`` repeats a run.  Unknown keys and values of
the wrong type are errors (``ConfigError``, one line naming the key), never ignored.
"""
from __future__ import annotations

import dataclasses
import difflib
import tomllib
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from dtnn.parallel.options import DistOptions
from dtnn.errors import ConfigError
from dtnn.prune.options import PruneConfig


@dataclass
class ModelConfig:
    #: builder name: simplecnn, lenet, vgg11_bn, vgg16_bn, vgg19, cnet
    name: str = "simplecnn"
    #: builder keyword arguments, e.g. {width = 0.5, dropout = 0.3}
    options: Dict[str, Any] = field(default_factory=dict)
    #: convolution variant used by every Conv2D layer: "bestof" (the fastest variant per
    #: layer shape, tuned online; see [tune]), or one pinned: im2col, im2col1, winograd,
    #: winograd2, winograd4, implicit, direct, torch
    conv_algorithm: str = "bestof"


@dataclass
class DataConfig:
    #: fashion-mnist, idx, npz, hdf5, digits, synthetic
    source: str = "fashion-mnist"
    #: file or directory for idx/npz/hdf5 ("" = the loader's default)
    path: str = ""
    #: fraction of the training set held out (stratified) for validation; 0 = none
    val_fraction: float = 0.0
    #: standardise with the training set's per-channel mean/std
    normalize: bool = True
    #: random shift augmentation in pixels (0 = off)
    augment_shift: int = 0
    #: random horizontal flips (wrong for digits and characters)
    augment_flip: bool = False
    #: extra loader options, e.g. for synthetic data {shape = [1, 28, 28], classes = 10}
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    #: sgd, adam, adamw
    name: str = "sgd"
    lr: float = 0.05
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = True
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    #: multiply lr by the number of processes (linear scaling rule; use warm-up with it)
    scale_lr_by_world: bool = False
    #: clip the global L2 norm of the (averaged) gradients to this value; 0 = off
    clip_grad_norm: float = 0.0


@dataclass
class ScheduleConfig:
    #: constant, step, multistep, cosine
    name: str = "cosine"
    step_size: int = 7
    gamma: float = 0.1
    milestones: List[int] = field(default_factory=list)
    min_lr: float = 0.0
    warmup_epochs: float = 0.0
    #: plateau reduction: multiply the lr by plateau_factor after this many evaluations
    #: without improvement of train.monitor (0 = off); never below min_lr
    plateau_patience: int = 0
    plateau_factor: float = 0.1


@dataclass
class TrainConfig:
    epochs: int = 10
    #: samples per step on each process
    batch_size: int = 64
    #: if > 0: samples per step over all processes (overrides batch_size; must divide)
    global_batch_size: int = 0
    seed: int = 0
    label_smoothing: float = 0.0
    #: BLAS/OpenMP threads per process (0 = cores per host / processes per host)
    threads: int = 0
    #: stop after this many steps per epoch (0 = full epochs); for smoke tests
    max_steps_per_epoch: int = 0
    eval_batch_size: int = 500
    #: evaluations per epoch (on the eval split): 1 = at the end of every epoch; K > 1 also
    #: after every 1/K of an epoch (finer time-to-accuracy)
    evals_per_epoch: int = 1
    #: if > 0: record the training time at which eval accuracy first reaches this
    #: (``time_to_accuracy`` in metrics.jsonl)
    target_accuracy: float = 0.0
    #: stop training at the first evaluation that reaches ``train.target_accuracy``
    stop_at_target: bool = False
    #: metric watched by early stopping and the plateau lr reduction:
    #: eval_loss (lower is better), eval_accuracy or eval_macro_f1
    monitor: str = "eval_loss"
    #: stop after this many epoch-end evaluations without improvement of train.monitor
    #: (0 = off)
    early_stopping_patience: int = 0
    #: stop (with advice) when the mean training loss over 25 steps exceeds this times
    #: ln(classes); non-finite gradients always stop; 0 = no loss check
    divergence_loss: float = 3.0
    #: stop (with advice) when the network's output has not depended on its input (all
    #: ReLUs dead: loss stuck at ln(classes), accuracy at chance) for this many epochs
    #: past warm-up; 0 = off
    dead_network_epochs: float = 1.0


@dataclass
class OutputConfig:
    run_dir: str = "runs/default"
    #: write checkpoint.h5 every this many epochs (0 = only at the end)
    checkpoint_every: int = 1
    #: under MPI with a compressor, each rank writes its error-feedback memory to its
    #: own shard next to the checkpoint (<name>.shards/; needs a file system every rank
    #: reads, as resuming does) instead of gathering it through rank 0 (dtnn.io.shards)
    checkpoint_shards: bool = True
    #: rank 0 writes each checkpoint on a background thread from a snapshot (atomic;
    #: the next save and the end of training wait for it; dtnn.io.ckptwriter)
    checkpoint_background: bool = True
    progress: bool = True
    #: also write best.h5 whenever this eval metric improves ("" = off):
    #: eval_accuracy, eval_macro_f1 or eval_loss
    keep_best: str = ""


@dataclass
class TuneConfig:
    """Online auto-tuning (model.conv_algorithm = "bestof"; see dtnn/tune)."""
    #: timed rounds per alternative before deciding
    rounds: int = 5
    #: untimed-for-the-decision first calls per alternative
    warmup: int = 1
    #: drop alternatives slower than this many times the best (from round 2)
    prune_ratio: float = 1.5
    #: reuse and store decisions on disk
    cache: bool = True
    #: decision cache directory ("" = $DTNN_TUNE_CACHE or ~/.cache/dtnn/tune)
    cache_dir: str = ""
    #: pin every bestof convolution to this variant where it applies ("" = tune)
    force: str = ""
    #: variants bestof races ([] = dtnn's own: im2col, im2col1, winograd, implicit,
    #: direct; add "torch" to race torch's convolution too)
    candidates: List[str] = field(default_factory=list)
    #: exclude a variant for a layer shape when its normwise error on the layer's data
    #: exceeds this (0 = no accuracy screen)
    max_error: float = 1e-4
    #: tuning cost (seconds beyond the best variants) a process may spend; then the
    #: remaining shapes decide on what was measured and are tuned on by later runs
    #: (0 = no limit)
    max_seconds: float = 60.0
    #: ranks that agree on each variant: "job" (every rank: a synchronous step runs at
    #: the slowest rank's pace) or "node" (the ranks of one host; for nodes that differ)
    scope: str = "job"

    def check(self) -> None:
        from dtnn.conv import CONV_ALGORITHMS
        from dtnn.tune import SCOPES
        if self.scope not in SCOPES:
            raise ConfigError(f"tune.scope = {self.scope!r}: expected one of "
                              f"{', '.join(SCOPES)}")
        names = CONV_ALGORITHMS.names()
        for key, value in [("tune.force", self.force)] + [("tune.candidates", c)
                                                          for c in self.candidates]:
            if value and (value not in names or value == "bestof"):
                raise ConfigError(f"{key} = {value!r}: unknown convolution variant (one of "
                                  f"{', '.join(n for n in names if n != 'bestof')})")
        for key, value in (("tune.rounds", self.rounds), ("tune.warmup", self.warmup),
                           ("tune.max_error", self.max_error),
                           ("tune.max_seconds", self.max_seconds)):
            if value < 0:
                raise ConfigError(f"{key} must be >= 0, got {value}")

    def options(self):
        from dtnn.tune import TuneOptions
        self.check()
        return TuneOptions(rounds=self.rounds, warmup=self.warmup,
                           prune_ratio=self.prune_ratio, use_cache=self.cache,
                           cache_dir=self.cache_dir,
                           force={"conv": self.force, "conv_infer": self.force}
                           if self.force else {},
                           max_error=self.max_error, max_seconds=self.max_seconds,
                           conv_candidates=tuple(self.candidates), scope=self.scope)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    #: gradient exchange between processes (see dtnn/parallel/options.py)
    dist: DistOptions = field(default_factory=DistOptions)
    #: online auto-tuning of the convolution variants (see dtnn/tune)
    tune: TuneConfig = field(default_factory=TuneConfig)
    #: feature-map pruning (dtnn prune; see dtnn/prune)
    prune: PruneConfig = field(default_factory=PruneConfig)

    def to_dict(self) -> Dict[str, Any]:
        """The whole config as nested dicts (JSON/TOML-able)."""
        return dataclasses.asdict(self)


# --- loading and overriding ----------------------------------------------------------

def _unknown(key: str, choices, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(choices), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"{where}: unknown key '{key}'{hint}")


def _coerce(value: Any, typ: Any, key: str, where: str) -> Any:
    """Check ``value`` against the field type; ints are accepted for floats."""
    origin = typing.get_origin(typ)
    bad = ConfigError(f"{where}: '{key}' must be {_type_name(typ)}, got {value!r}")
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if typ is bool or typ is str:
        if not isinstance(value, typ):
            raise bad
        return value
    if origin in (list, List):
        (item,) = typing.get_args(typ)
        if not isinstance(value, list):
            raise bad
        return [_coerce(v, item, key, where) for v in value]
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    return value


def _type_name(typ: Any) -> str:
    if typing.get_origin(typ) in (list, List):
        return f"a list of {typing.get_args(typ)[0].__name__}"
    if typing.get_origin(typ) in (dict, Dict):
        return "a table"
    return {float: "a number", int: "an integer", bool: "true or false", str: "a string"}.get(
        typ, str(typ))


def apply_dict(cfg: Config, data: Dict[str, Any], where: str) -> Config:
    """Merge a nested dict (parsed TOML) into ``cfg``, checking every key and type."""
    for section, values in data.items():
        if not hasattr(cfg, section) or section.startswith("_"):
            raise _unknown(section, [f.name for f in dataclasses.fields(Config)], where)
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: '{section}' must be a table")
        sub = getattr(cfg, section)
        hints = typing.get_type_hints(type(sub))
        for key, value in values.items():
            if key not in hints:
                raise _unknown(f"{section}.{key}", [f"{section}.{k}" for k in hints], where)
            if isinstance(value, _MergeInto):
                value = {**getattr(sub, key), **value}
            setattr(sub, key, _coerce(value, hints[key], f"{section}.{key}", where))
    return cfg


def load_config(path: Optional[str] = None, overrides: Optional[List[str]] = None) -> Config:
    """A checked ``Config`` from a TOML file (optional) plus ``--set``-style overrides
    (``"train.epochs=5"``); unknown keys and bad values raise ConfigError."""
    cfg = Config()
    if path:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
        apply_dict(cfg, data, path)
    for item in overrides or []:
        apply_dict(cfg, parse_override(item), f"--set {item}")
    validate(cfg)
    return cfg


def parse_override(item: str) -> Dict[str, Any]:
    """``a.b=v`` -> {"a": {"b": v}}; v is read as a TOML value, else as a string.
    ``model.options.width=0.5`` sets one key inside a table option."""
    if "=" not in item:
        raise ConfigError(f"--set {item}: expected key=value")
    key, raw = (s.strip() for s in item.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    parts = key.split(".")
    if len(parts) < 2:
        raise ConfigError(f"--set {item}: key must look like section.name")
    if len(parts) > 2:  # a key inside a table field (options)
        return {parts[0]: {parts[1]: _MergeInto({".".join(parts[2:]): value})}}
    return {parts[0]: {parts[1]: value}}


def reject_overrides(items: List[str], *, command: str, ignored: tuple = (),
                     allowed: Optional[tuple] = None) -> None:
    """ConfigError for a ``--set`` that ``command`` would silently ignore: keys in the
    ``ignored`` sections (or, with ``allowed``, outside those sections/keys)."""
    for item in items:
        key = item.split("=", 1)[0].strip()
        section = key.split(".", 1)[0]
        bad = section in ignored or (allowed is not None and not any(
            key == a or key.startswith(a + ".") for a in allowed))
        if bad:
            use = (f"it only takes {', '.join(a + ('' if '.' in a else '.*') for a in allowed)}"
                   if allowed is not None else f"[{section}] is not used by it")
            raise ConfigError(f"--set {item}: {command} ignores '{key}' ({use})")


class _MergeInto(dict):
    """Marks a --set on one key of a table field: merged, not replacing the table."""


#: evaluation metrics that keep_best, early stopping and the plateau reduction can watch
MONITORED = ("eval_loss", "eval_accuracy", "eval_macro_f1")


def validate(cfg: Config) -> None:
    """Check every value (``ConfigError`` naming the key) and resolve the ``[dist]``
    section once: the values this config sets explicitly, over the ``DTNN_*``
    environment variables, over the defaults (``DistOptions.resolve``).  The result
    stays in ``cfg.dist``; nothing downstream resolves it again."""
    checks = [
        (cfg.train.epochs >= 1, "train.epochs must be >= 1"),
        (cfg.train.batch_size >= 1, "train.batch_size must be >= 1"),
        (cfg.train.global_batch_size >= 0, "train.global_batch_size must be >= 0"),
        (cfg.train.threads >= 0, "train.threads must be >= 0"),
        (cfg.optim.lr > 0, "optim.lr must be > 0"),
        (0.0 <= cfg.data.val_fraction < 1.0, "data.val_fraction must be in [0, 1)"),
        (cfg.data.augment_shift >= 0, "data.augment_shift must be >= 0"),
        (cfg.output.checkpoint_every >= 0, "output.checkpoint_every must be >= 0"),
        (0.0 <= cfg.train.label_smoothing < 1.0, "train.label_smoothing must be in [0, 1)"),
        (cfg.train.evals_per_epoch >= 1, "train.evals_per_epoch must be >= 1"),
        (0.0 <= cfg.train.target_accuracy <= 1.0, "train.target_accuracy must be in [0, 1]"),
        (not cfg.train.stop_at_target or cfg.train.target_accuracy > 0,
         "train.stop_at_target needs train.target_accuracy > 0"),
        (cfg.train.monitor in MONITORED, f"train.monitor must be one of {MONITORED}"),
        (cfg.output.keep_best in ("",) + MONITORED,
         f"output.keep_best must be \"\" or one of {MONITORED}"),
        (cfg.train.early_stopping_patience >= 0, "train.early_stopping_patience must be >= 0"),
        (cfg.schedule.plateau_patience >= 0, "schedule.plateau_patience must be >= 0"),
        (0.0 < cfg.schedule.plateau_factor < 1.0, "schedule.plateau_factor must be in (0, 1)"),
        (cfg.optim.clip_grad_norm >= 0, "optim.clip_grad_norm must be >= 0 (0 = off)"),
        (cfg.train.divergence_loss >= 0, "train.divergence_loss must be >= 0 (0 = off)"),
        (cfg.train.dead_network_epochs >= 0,
         "train.dead_network_epochs must be >= 0 (0 = off)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    cfg.tune.check()
    cfg.dist = DistOptions.resolve(explicit_dist_options(cfg))
    from dtnn.models.options import check_options
    check_options(cfg.model.name, cfg.model.options)


def explicit_dist_options(cfg: Config) -> Dict[str, Any]:
    """The [dist] values that differ from the defaults (so DTNN_* environment variables
    still apply to whatever the config does not set)."""
    defaults = dataclasses.asdict(DistOptions())
    return {k: v for k, v in dataclasses.asdict(cfg.dist).items() if v != defaults[k]}


def to_toml(cfg: Config) -> str:
    """Serialise a config as TOML (small writer: our values are scalars, lists, tables)."""
    lines: List[str] = []
    for section, values in cfg.to_dict().items():
        lines.append(f"[{section}]")
        tables = {k: v for k, v in values.items() if isinstance(v, dict)}
        for key, value in values.items():
            if key not in tables:
                lines.append(f"{key} = {_toml_value(value)}")
        for key, table in tables.items():
            inner = ", ".join(f"{k} = {_toml_value(v)}" for k, v in table.items())
            lines.append(f"{key} = {{{inner}}}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")
