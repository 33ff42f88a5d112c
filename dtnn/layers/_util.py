"""Small argument helpers shared by the layer modules."""
from __future__ import annotations

import numbers
from typing import Any, Tuple

from dtnn.errors import ConfigError


def pair(value: Any, what: str, minimum: int = 1) -> Tuple[int, int]:
    """An int or a 2-sequence of ints -> (h, w), each >= ``minimum``."""
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be an int or [h, w], got {value!r}")
    if isinstance(value, numbers.Integral):
        out = (int(value), int(value))
    elif isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        out = (int(value[0]), int(value[1]))
    else:
        raise ConfigError(f"{what} must be an int or [h, w], got {value!r}")
    if min(out) < minimum:
        raise ConfigError(f"{what} must be >= {minimum}, got {value!r}")
    return out


def jsonable(value: Any) -> Any:
    """Tuples -> lists (recursively) so configs survive a JSON round trip unchanged."""
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value


def require_rank(layer: str, input_shape, ranks, hint: str = "") -> Tuple[int, ...]:
    shape = tuple(int(d) for d in input_shape)
    if len(shape) not in ranks:
        want = " or ".join(f"{r}-D" for r in ranks)
        raise ConfigError(f"{layer} needs a {want} per-sample input, got shape {shape}"
                          + (f"; {hint}" if hint else ""))
    return shape
