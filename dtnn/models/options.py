"""The options each zoo model takes: types, defaults, limits, one-line help.

``check_options("lenet", {"filters": 32})`` raises a ``ConfigError`` that says what is
expected ("model 'lenet': option 'filters' must be a list of 2 integers >= 1 (one per
convolution), got 32"); an unknown key names the model's options.  The table is light
(no numpy, no layers), so the config can be checked before any data is loaded, and it is
what ``dtnn models`` prints.  ``tests/engine/test_zoo.py`` checks that every builder's
signature defaults equal the defaults here.
"""
from __future__ import annotations

import difflib
import numbers
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from dtnn.errors import ConfigError


@dataclass(frozen=True)
class Option:
    kind: str            # "int", "float", "ints" (a list of ints), "int_or_auto", "choice"
    default: Any
    help: str
    minimum: Optional[float] = None
    maximum: Optional[float] = None  # excluded
    length: Optional[int] = None     # for "ints": exact length (None = any, >= 1)
    strict_min: bool = False         # minimum excluded
    choices: tuple = ()              # for "choice"

    def expected(self) -> str:
        bounds = []
        if self.minimum is not None:
            bounds.append(f"{'>' if self.strict_min else '>='} {self.minimum:g}")
        if self.maximum is not None:
            bounds.append(f"< {self.maximum:g}")
        bound = (" " + " and ".join(bounds)) if bounds else ""
        if self.kind == "int":
            return f"an integer{bound}"
        if self.kind == "float":
            return f"a number{bound}"
        if self.kind == "int_or_auto":
            return f'an integer{bound} or "auto"'
        if self.kind == "choice":
            return "one of " + ", ".join(f'"{c}"' for c in self.choices)
        if self.length:
            return f"a list of {self.length} integers{bound}"
        return f"a non-empty list of integers{bound}"

    def check(self, model: str, key: str, value: Any) -> Any:
        bad = ConfigError(f"model '{model}': option '{key}' must be {self.expected()}"
                          f"{' (' + self.help + ')' if self.kind == 'ints' else ''}, "
                          f"got {value!r}")
        if self.kind == "int_or_auto" and value == "auto":
            return value
        if self.kind == "choice":
            if value not in self.choices:
                raise bad
            return value
        if self.kind in ("int", "int_or_auto"):
            if not _is_int(value):
                raise bad
            self._bounds(value, bad)
            return int(value)
        if self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise bad
            self._bounds(value, bad)
            return float(value)
        if self.kind == "ints":
            if not isinstance(value, (list, tuple)) or not value or not all(map(_is_int, value)):
                raise bad
            if self.length is not None and len(value) != self.length:
                raise bad
            for v in value:
                self._bounds(v, bad)
            return [int(v) for v in value]
        raise AssertionError(self.kind)

    def _bounds(self, value, bad: ConfigError) -> None:
        if self.minimum is not None and (value < self.minimum
                                         or (self.strict_min and value == self.minimum)):
            raise bad
        if self.maximum is not None and value >= self.maximum:
            raise bad


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


_WIDTH = Option("float", 1.0, "channel multiplier of every convolution and of the FC layer",
                minimum=0, strict_min=True)
_INIT = Option("choice", "torch", "weight init of every conv/FC layer: torch's default "
               "(uniform, 1/sqrt(fan_in)), he or glorot", choices=("torch", "he", "glorot"))
_DROPOUT = lambda d: Option("float", d, "dropout before the classifier (0 = none)",  # noqa: E731
                            minimum=0, maximum=1)

#: model name -> {option -> Option}; conv_algorithm is set from model.conv_algorithm
MODEL_OPTIONS: Dict[str, Dict[str, Option]] = {
    "simplecnn": {
        "filters": Option("int", 32, "channels of the 3x3 convolution", minimum=1),
        "hidden": Option("int", 64, "units of the hidden FC layer", minimum=1),
        "dropout": _DROPOUT(0.0),
        "init": _INIT,
    },
    "lenet": {
        "filters": Option("ints", [6, 16], "channels of the two 5x5 convolutions", minimum=1,
                          length=2),
        "hidden": Option("ints", [120, 84], "units of the hidden FC layers", minimum=1),
        "padding": Option("int_or_auto", "auto", 'padding of the first convolution; "auto": 2 '
                          "on inputs up to 28x28 (the 32x32 geometry), else 0; 0 = the "
                          "classic unpadded shape", minimum=0),
        "init": _INIT,
    },
    "vgg11_bn": {"width": _WIDTH, "hidden": Option("int", 512, "units of the FC layer before "
                                                   "the width multiplier", minimum=1),
                 "dropout": _DROPOUT(0.5)},
    "cnet": {"width": _WIDTH, "hidden": Option("int", 1024, "units of the FC layer before the "
                                               "width multiplier", minimum=1),
             "dropout": _DROPOUT(0.5)},
}
MODEL_OPTIONS["vgg16_bn"] = MODEL_OPTIONS["vgg11_bn"]
MODEL_OPTIONS["vgg19"] = MODEL_OPTIONS["vgg11_bn"]

#: options every builder takes, set by the session (not listed by ``dtnn models``)
COMMON_OPTIONS = ("conv_algorithm",)


def check_options(model: str, options: Dict[str, Any]) -> Dict[str, Any]:
    """The options with types checked (ints as ints, lists as lists); ConfigError on an
    unknown key or a bad value.  Models without a spec (registered by users) pass as is."""
    spec = MODEL_OPTIONS.get(model)
    if spec is None:
        return dict(options)
    out: Dict[str, Any] = {}
    for key, value in options.items():
        if key in COMMON_OPTIONS:
            out[key] = value
            continue
        if key not in spec:
            close = difflib.get_close_matches(key, list(spec), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"model '{model}': unknown option '{key}' ({hint}it takes: "
                              f"{', '.join(spec)})")
        out[key] = spec[key].check(model, key, value)
    return out


def models_table(names: Optional[List[str]] = None) -> List[Dict[str, Any]]:
    """One row per model option (for ``dtnn models``): model, option, default, expected, help."""
    rows = []
    for name in names or sorted(MODEL_OPTIONS):
        for key, opt in MODEL_OPTIONS[name].items():
            rows.append({"model": name, "option": key, "default": opt.default,
                         "expects": opt.expected(), "help": opt.help})
    return rows


def format_models_table(names: Optional[List[str]] = None) -> str:
    """The zoo as a text table: model, option, default, what it expects, meaning."""
    rows = [("model", "option", "default", "expects", "meaning")]
    last = None
    for r in models_table(names):
        default = r["default"]
        shown = (f'"{default}"' if isinstance(default, str)
                 else "[" + ", ".join(map(str, default)) + "]" if isinstance(default, list)
                 else f"{default:g}" if isinstance(default, float) else str(default))
        rows.append((r["model"] if r["model"] != last else "", r["option"], shown,
                     r["expects"], r["help"]))
        last = r["model"]
    widths = [max(len(row[c]) for row in rows) for c in range(4)]
    lines = ["  ".join(row[c].ljust(widths[c]) for c in range(4)) + "  " + row[4]
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(line.rstrip() for line in lines)
