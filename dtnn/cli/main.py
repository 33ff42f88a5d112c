"""``dtnn`` command line: argparse subcommands, one module each.

User mistakes (``UserError``: bad option, bad value, missing or corrupt file) are
printed as a single line and exit with status 2; no traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from typing import List, Optional

from dtnn import __version__
from dtnn.errors import TrainingDiverged, UserError
from dtnn.parallel.failure import distributed_world

#: subcommand -> module in dtnn.cli providing add_arguments(parser) and run(args)
SUBCOMMANDS = {
    "train": ("dtnn.cli.train", "train a model (also under mpiexec)"),
    "eval": ("dtnn.cli.evaluate", "evaluate a checkpoint on a dataset"),
    "predict": ("dtnn.cli.predict", "predict classes for images or arrays"),
    "info": ("dtnn.cli.info", "show kernels, threads, MPI and library versions"),
    "bench": ("dtnn.cli.bench", "benchmarks (dist: data-parallel throughput, under mpiexec)"),
    "tune": ("dtnn.cli.tune", "pre-tune a model's convolution variants (BestOf) into the cache"),
    "prune": ("dtnn.cli.prune", "prune conv feature maps / dense units (Taylor, L1, random)"),
    "export": ("dtnn.cli.export", "export a checkpoint to ONNX (checked against dtnn)"),
    "models": ("dtnn.cli.models", "list the model zoo with its options and defaults"),
    "lr-find": ("dtnn.cli.lr_find", "learning-rate range test: plot loss vs lr, suggest one"),
    "serve": ("dtnn.cli.serve", "web page to draw characters for a checkpoint, and a JSON API"),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but an error is one line (usage stays available with --help)."""

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The whole parser, or (``only``) one whose other subcommands are left without
    their options: building a subcommand's options imports its module, and ``dtnn
    --help`` or ``dtnn eval missing.h5`` must not wait for numpy, h5py or MPI."""
    parser = OneLineParser(prog="dtnn", description="Distributed deep-learning training "
                           "on CPU clusters (numpy/Cython kernels + MPI).")
    parser.add_argument("--version", action="version", version=f"dtnn {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or name == only:
            importlib.import_module(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def _chosen(argv: List[str]) -> Optional[str]:
    for item in argv:
        if item in SUBCOMMANDS:
            return item
        if not item.startswith("-"):
            return None
    return None


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = _chosen(argv)
    parser = build_parser(chosen) if chosen else build_parser(only="")
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    from dtnn.parallel.failure import abort_if_distributed, exit_message
    try:
        status = int(module.run(args) or 0)
    except SystemExit as exc:
        # a rank leaving early with an error status: the others would wait forever
        if exc.code not in (None, 0):
            abort_if_distributed(f"dtnn {args.command}: exit status {exc.code}",
                                 exc.code if isinstance(exc.code, int) else 1)
        raise
    except TrainingDiverged as exc:
        # decided on every rank at the same step: one message (rank 0), status 2 everywhere
        world = distributed_world()
        if world is None or world[0] == 0:
            sys.stderr.write(f"dtnn {args.command}: error: {exc}\n")
        return 2
    except UserError as exc:
        # under MPI with several processes: print with the rank and abort the whole job
        abort_if_distributed(f"dtnn {args.command}: error: {exc}", 2)
        sys.stderr.write(f"dtnn {args.command}: error: {exc}\n")
        return 2
    except KeyboardInterrupt as exc:
        # every rank must end: the ones blocked in MPI never see this signal
        message, code = exit_message(exc)
        abort_if_distributed(message, code)
        sys.stderr.write(message + "\n")
        return code
    except Exception:
        abort_if_distributed(traceback.format_exc(), 1)
        raise
    if status:
        abort_if_distributed(f"dtnn {args.command}: exit status {status}", status)
    return status


if __name__ == "__main__":
    sys.exit(main())
