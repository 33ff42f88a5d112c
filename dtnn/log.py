"""Rank-aware logging: rank 0 logs INFO, other ranks only warnings and errors.

Every line carries the rank (``[r3]``) once the job has more than one process.
``DTNN_LOG_ALL_RANKS=1`` unmutes every rank (for debugging a single straggler).
"""
from __future__ import annotations

import logging
import os
import sys

_LOGGER_NAME = "dtnn"


def setup_logging(rank: int = 0, size: int = 1, verbose: bool = False) -> logging.Logger:
    logger = logging.getLogger(_LOGGER_NAME)
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    prefix = f"[r{rank}] " if size > 1 else ""
    handler.setFormatter(logging.Formatter(f"%(asctime)s {prefix}%(levelname)s %(message)s",
                                           datefmt="%H:%M:%S"))
    logger.addHandler(handler)
    all_ranks = os.environ.get("DTNN_LOG_ALL_RANKS", "") not in ("", "0")
    if rank == 0 or all_ranks:
        logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    else:
        logger.setLevel(logging.WARNING)
    logger.propagate = False
    return logger


def get_logger() -> logging.Logger:
    return logging.getLogger(_LOGGER_NAME)
