"""Coercion of loader options that may arrive as strings from the command line.

Every helper raises ``ConfigError`` with the option name, so ``--data-opt n_train=x``
fails with one readable line instead of a traceback.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

from dtnn.errors import ConfigError


def as_int(name: str, value, minimum: Optional[int] = None) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"option {name}: expected an integer, got {value!r}")
    try:
        out = int(value)
        if isinstance(value, float) and out != value:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"option {name}: expected an integer, got {value!r}") from None
    if minimum is not None and out < minimum:
        raise ConfigError(f"option {name}: must be >= {minimum}, got {out}")
    return out


def as_float(name: str, value, low: Optional[float] = None, high: Optional[float] = None,
             low_open: bool = False, high_open: bool = False) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"option {name}: expected a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"option {name}: expected a number, got {value!r}") from None
    if out != out:
        raise ConfigError(f"option {name}: must not be NaN")
    bad = ((low is not None and (out < low or (low_open and out == low)))
           or (high is not None and (out > high or (high_open and out == high))))
    if bad:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ConfigError(f"option {name}: must be in {lo}{low}, {high}{hi}, got {out}")
    return out


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def as_bool(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"option {name}: expected true or false, got {value!r}")


def as_shape(name: str, value) -> Tuple[int, ...]:
    """``(1, 28, 28)``, ``[64]``, ``"1,28,28"`` or ``"1x28x28"`` -> tuple of ints >= 1."""
    if isinstance(value, str):
        parts = [p for p in value.replace("x", ",").split(",") if p.strip()]
    elif isinstance(value, int) and not isinstance(value, bool):
        parts = [value]
    else:
        try:
            parts = list(value)
        except TypeError:
            raise ConfigError(f"option {name}: expected a shape like 1,28,28, got {value!r}") from None
    dims = tuple(as_int(name, p.strip() if isinstance(p, str) else p, minimum=1) for p in parts)
    if len(dims) not in (1, 3):
        raise ConfigError(f"option {name}: expected (C, H, W) or (F,), got {value!r}")
    return dims


def as_classes(name: str, value) -> Optional[List[str]]:
    """Class names from a list, a comma-separated string or a count (-> "0".."K-1")."""
    if value is None:
        return None
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.isdigit():
            value = int(stripped)
        else:
            value = [p.strip() for p in stripped.split(",")]
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ConfigError(f"option {name}: need at least one class, got {value}")
        return [str(i) for i in range(value)]
    if isinstance(value, Sequence):
        names = [str(v) for v in value]
        if not names or any(not n for n in names):
            raise ConfigError(f"option {name}: class names must be non-empty, got {value!r}")
        if len(set(names)) != len(names):
            raise ConfigError(f"option {name}: duplicate class names in {names}")
        return names
    raise ConfigError(f"option {name}: expected a list of class names or a count, got {value!r}")


ClassesOption = Union[None, int, str, Sequence[str]]
