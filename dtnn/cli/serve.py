"""``dtnn serve``: the drawing page and JSON API for a checkpoint (see dtnn/serve/)."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint.h5 written by dtnn train (or prune)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; "
                        "0.0.0.0 exposes the page to the network)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (0: any free port)")
    p.add_argument("--max-body-mb", type=float, default=4.0,
                   help="largest request body accepted, in MiB (default 4)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS/OpenMP threads for inference (default 1: lowest latency "
                        "for one drawing at a time)")


def run(args) -> int:
    from dtnn.errors import ConfigError
    from dtnn.log import setup_logging
    from dtnn.serve.server import serve
    from dtnn.threads import set_threads

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {args.port}")
    if not 0 < args.max_body_mb <= 1024:
        raise ConfigError(f"--max-body-mb must be in (0, 1024], got {args.max_body_mb}")
    if args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    from dtnn.cli._checks import checkpoint_file
    checkpoint_file(args.checkpoint)   # one line before the web stack and model load
    setup_logging(0, 1, getattr(args, "verbose", False))
    set_threads(args.threads)
    serve(args.checkpoint, host=args.host, port=args.port,
          max_body=int(args.max_body_mb * 1024 * 1024))
    return 0
