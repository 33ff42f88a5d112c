"""``dtnn export CHECKPOINT --onnx model.onnx``: ONNX export with a numerical check
against dtnn's own forward pass on real inputs (the checkpoint's test data, normalised
as in training; random inputs if that data is not available)."""
from __future__ import annotations

import argparse
import json

from dtnn.log import get_logger, setup_logging


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a dtnn checkpoint (trained or pruned)")
    p.add_argument("--onnx", required=True, metavar="FILE", help="ONNX file to write")
    p.add_argument("--samples", type=int, default=256,
                   help="test samples for the check against dtnn (default 256; 0 = no check)")
    p.add_argument("--json", metavar="FILE", help="write the check's result as JSON ('-' = stdout)")


def run(args) -> int:
    from dtnn.errors import UserError
    from dtnn.export.inputs import check_inputs
    from dtnn.export.onnx import check, export_onnx
    from dtnn.io.checkpoint import load_checkpoint
    from dtnn.threads import set_threads

    setup_logging(0, 1, getattr(args, "verbose", False))
    if args.samples < 0:
        raise UserError(f"--samples must be >= 0, got {args.samples}")
    set_threads(1)
    log = get_logger()
    ckpt = load_checkpoint(args.checkpoint)
    path = export_onnx(ckpt.model, args.onnx)
    log.info(f"wrote {path} ({ckpt.model.num_params():,} parameters)")
    if not args.samples:
        return 0
    x, source = check_inputs(args.checkpoint, ckpt, args.samples)
    result = dict(check(ckpt.model, path, x), inputs=source, onnx=path)
    print(f"ONNX Runtime vs dtnn on {result['samples']} {source} inputs: max abs difference "
          f"{result['max_abs_diff']:.3g} (max |logit| {result['max_abs_output']:.3g}), "
          f"same predicted class {100 * result['same_predictions']:.1f}%")
    if args.json:
        text = json.dumps(result, indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as fh:
                fh.write(text + "\n")
    return 0
