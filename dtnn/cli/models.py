"""``dtnn models``: the model zoo, each model's options with defaults and what they take;
with a model name, that model's layer table and parameter count for an input shape."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="show this model's layers and parameter count")
    p.add_argument("--input-shape", default="1,28,28", metavar="C,H,W",
                   help="input shape for the layer table (default 1,28,28)")
    p.add_argument("--classes", type=int, default=10, help="number of classes (default 10)")
    p.add_argument("--option", "-o", dest="options", action="append", default=[],
                   metavar="KEY=VALUE", help="a builder option, e.g. padding=0 or "
                   "filters=[32,64] (repeatable)")


def run(args) -> int:
    from dtnn.errors import ConfigError
    from dtnn.models.options import format_models_table
    if args.name is None:
        if args.options:
            raise ConfigError("--option needs a model name (dtnn models NAME --option k=v)")
        print(format_models_table())
        print("\nSet them in a config ([model] options = {hidden = 128}) or with "
              "--set model.options.KEY=VALUE; `dtnn models NAME` shows the layers.")
        return 0
    from dtnn.config import parse_override
    try:
        shape = tuple(int(v) for v in args.input_shape.split(","))
    except ValueError:
        raise ConfigError(f"--input-shape: expected integers like 1,28,28, got "
                          f"{args.input_shape!r}") from None
    options = {}
    for item in args.options:
        options.update(parse_override(f"model.options.{item}")["model"]["options"])
    from dtnn.models import build_model
    print(build_model(args.name, shape, args.classes, **options).summary())
    return 0
