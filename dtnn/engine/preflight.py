"""Checks that run before any data is loaded (which takes tens of seconds on real
datasets, in every rank): every name in the config resolves, the schedule's options
are valid, and the run directory can take this run.  Each failure is a one-line
``ConfigError`` (exit status 2)."""
from __future__ import annotations

from typing import Optional

from dtnn.errors import ConfigError


def check_names(cfg) -> None:
    """model, convolution variant, optimizer, schedule (with its options), tune.force."""
    from dtnn.models import MODELS
    from dtnn.optim import OPTIMIZERS
    import dtnn.conv  # noqa: F401  (registers the variants)
    from dtnn.conv.base import CONV_ALGORITHMS
    from dtnn.conv.bestof import CANDIDATES

    MODELS.get(cfg.model.name)
    algorithm = cfg.model.options.get("conv_algorithm", cfg.model.conv_algorithm)
    if not isinstance(algorithm, str):
        raise ConfigError(f"model.conv_algorithm must be a string, got {algorithm!r}")
    CONV_ALGORITHMS.get(algorithm)
    OPTIMIZERS.get(cfg.optim.name)
    from dtnn.engine.session import make_schedule
    make_schedule(cfg, steps_per_epoch=1)   # unknown names and bad options
    force = cfg.tune.force
    if force and force not in CANDIDATES + ["torch"]:
        raise ConfigError(f"tune.force = {force!r}: not a convolution variant BestOf "
                          f"chooses from ({', '.join(CANDIDATES + ['torch'])})")


def check_train(cfg, *, resume: Optional[str] = None, overwrite: bool = False,
                is_root: bool = True) -> None:
    """Everything about ``dtnn train`` that does not need the data."""
    check_names(cfg)
    if resume and overwrite:
        raise ConfigError("--resume continues a run and --overwrite starts one afresh: "
                          "give one of them")
    if is_root:
        from dtnn.engine.rundir import check_run_dir
        check_run_dir(cfg.output.run_dir, resume=bool(resume), overwrite=overwrite)
