"""Argument checking shared by the optimizers and schedules (internal)."""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Dict, Iterable, List

import numpy as np

from dtnn.errors import ConfigError


def as_float(owner: str, name: str, value: Any) -> float:
    """``value`` as a finite float, or ConfigError naming the option."""
    if isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{owner}: option '{name}' must be a number (got {value!r})")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{owner}: option '{name}' must be a number (got {value!r})") from None
    if not math.isfinite(out):
        raise ConfigError(f"{owner}: option '{name}' must be finite (got {value!r})")
    return out


def as_int(owner: str, name: str, value: Any) -> int:
    """``value`` as an int (integral floats such as 7.0 are accepted)."""
    if isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{owner}: option '{name}' must be an integer (got {value!r})")
    try:
        out = int(value)
        exact = out == float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{owner}: option '{name}' must be an integer (got {value!r})") from None
    if not exact:
        raise ConfigError(f"{owner}: option '{name}' must be an integer (got {value!r})")
    return out


def as_bool(owner: str, name: str, value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.lower() in ("true", "yes", "1")
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"{owner}: option '{name}' must be true or false (got {value!r})")


def require(owner: str, name: str, value: Any, ok: bool, what: str) -> None:
    if not ok:
        raise ConfigError(f"{owner}: option '{name}' must be {what} (got {value!r})")


def as_floats(owner: str, **options: Any) -> List[float]:
    """``as_float`` of each option, in the order given."""
    return [as_float(owner, name, value) for name, value in options.items()]


def require_nonnegative(owner: str, **options: float) -> None:
    """``require`` each option to be >= 0, in the order given."""
    for name, value in options.items():
        require(owner, name, value, value >= 0, ">= 0")


def check_options(owner: str, factory: Callable, options: Dict[str, Any],
                  reserved: Iterable[str] = (), also: Iterable[str] = ()) -> None:
    """Reject options that ``factory`` does not take, naming the first bad one and
    listing the valid ones."""
    sig = inspect.signature(factory)
    reserved = set(reserved)
    allowed = [p for p in sig.parameters if p not in reserved and p != "self"
               and sig.parameters[p].kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                  inspect.Parameter.VAR_KEYWORD)]
    for key in options:
        if key not in allowed:
            valid = ", ".join(list(allowed) + list(also)) or "(none)"
            raise ConfigError(f"{owner}: unknown option '{key}' (valid options: {valid})")
    missing = [p for p in allowed
               if sig.parameters[p].default is inspect.Parameter.empty and p not in options]
    if missing:
        raise ConfigError(f"{owner}: missing required option '{missing[0]}'")


def check_vectors(owner: str, params: np.ndarray, grads: np.ndarray,
                  decay_mask: np.ndarray) -> None:
    """The flat vectors must be 1-D, of one shape, and params/grads of one float dtype.
    A mismatch here is a programming error, hence ValueError (not a UserError)."""
    for name, a in (("params", params), ("grads", grads), ("decay_mask", decay_mask)):
        if not isinstance(a, np.ndarray) or a.ndim != 1:
            raise ValueError(f"{owner}: {name} must be a 1-D numpy array")
    if not (params.shape == grads.shape == decay_mask.shape):
        raise ValueError(f"{owner}: params {params.shape}, grads {grads.shape} and "
                         f"decay_mask {decay_mask.shape} must have the same shape")
    if params.dtype != grads.dtype or params.dtype.kind != "f":
        raise ValueError(f"{owner}: params and grads must share one float dtype "
                         f"(got {params.dtype} and {grads.dtype})")
    if not params.flags.writeable:
        raise ValueError(f"{owner}: params must be writeable")


def load_buffers(owner: str, state: Dict[str, Any], buffers: Dict[str, np.ndarray]) -> int:
    """Check ``state`` has exactly ``steps`` + ``buffers`` with matching shapes, copy the
    arrays into the existing buffers and return the step count."""
    from dtnn.errors import DataError

    if not isinstance(state, dict):
        raise DataError(f"{owner} state must be a dict (got {type(state).__name__})")
    expected = {"steps", *buffers}
    extra = sorted(set(state) - expected)
    missing = sorted(expected - set(state))
    if missing:
        raise DataError(f"{owner} state is missing '{missing[0]}' (saved with other settings?)")
    if extra:
        raise DataError(f"{owner} state has unexpected '{extra[0]}' (saved with other settings?)")
    for key, buf in buffers.items():
        value = np.asarray(state[key])
        if value.shape != buf.shape:
            raise DataError(f"{owner} state '{key}' has shape {value.shape}, "
                            f"expected {buf.shape} (saved for another model?)")
    steps = state["steps"]
    if isinstance(steps, (bool, np.bool_)) or int(steps) != steps or int(steps) < 0:
        raise DataError(f"{owner} state 'steps' must be a non-negative integer (got {steps!r})")
    for key, buf in buffers.items():
        np.copyto(buf, state[key])
    return int(steps)
