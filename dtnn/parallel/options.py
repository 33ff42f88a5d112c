"""Options of the gradient exchange: defaults < environment (``DTNN_*``) < explicit.

They are the config's ``[dist]`` section (``dist.mode``, ``dist.bucket_mb``, ...).
``dtnn.config.load_config`` resolves that section once (``DistOptions.resolve``: the
values the config sets explicitly, over the ``DTNN_*`` environment variables, over
the defaults) and stores the result in ``cfg.dist``; ``engine.session.train`` hands
``cfg.dist`` to ``ctx.make_reducer(model, cfg.dist)`` unchanged.  Library users pass
a ``DistOptions`` or a plain dict (resolved the same way) to ``make_reducer`` or to
``dtnn.DistributedOptimizer``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, Dict, Mapping, Optional

from dtnn.errors import ConfigError

MODES = ("overlap", "blocking")


@dataclass
class DistOptions:
    #: "overlap": bucketed Iallreduce started from the backward hook;
    #: "blocking": one Allreduce of the whole gradient after backward (reference)
    mode: str = "overlap"
    #: bucket size in MiB (a bucket closes at the first layer boundary past this size);
    #: 0 = one bucket per layer with parameters
    bucket_mb: float = 4.0
    #: advance the collectives in flight from every backward hook, so they run while
    #: the backward pass computes (without it they mostly run in the final wait)
    progress: bool = True
    #: seconds: a hook that closes no bucket (in backward, and with ``defer_update`` at
    #: the next forward's layer boundaries) advances the collectives only if the last
    #: advance ended at least this long ago (hooks come in bursts: BN, ReLU, pool and
    #: conv of a block report within microseconds); 0 = every hook (default: at 0.2 ms
    #: the hooks' time fell by 0.3-0.5 ms per step but hops left for the final wait grew
    #: the exposed time by about as much, vgg11_bn 2 hosts 1 Gbit/s, scaling.md).
    #: Never skips a post, nor the poll right after it
    progress_interval: float = 0.0
    #: the uncompressed overlap path leaves the buckets in flight after backward: the
    #: next forward pass waits for the bucket holding each layer's parameters, applies
    #: their optimizer update, and advances the others at every layer boundary, so the
    #: exchange overlaps the next step's forward too (same maths, same bits as the
    #: synchronous step).  Compression, blocking mode, the exchange thread, gradient
    #: clipping, the divergence guard and check_replicas finish the step as before.
    #: Reading ``model.flat_params`` completes a pending update; layers' ``params``
    #: views do not (``DistributedOptimizer.flush()``).  Off by default (opt in): after
    #: ``step()`` a layer's ``params`` would silently hold the previous values until the
    #: next forward or flush, and a flush on one rank while its peers block in another
    #: collective (a rank-0-only save, then a barrier) never returns -- both are common
    #: patterns in DDP-style loops.  Measured: simplecnn 4 hosts 1 Gbit/s 29.1-31.7 ms
    #: per step against 31.9-35.9 synchronous in the same calls, vgg11_bn w0.5 no slower
    #: (benchmarks/results/scaling.md, #17)
    defer_update: bool = False
    #: the quantised ring's averaged gradient (int8, QSGD-8, TernGrad, sign over
    #: ``collective=qring``) is held as its final payloads and decoded by the optimizer's
    #: update block by block in L1 (SGD: csrc/decode_update.c), instead of being written
    #: to the flat gradient and read back: the same bits.  Between the exchange and the
    #: update the compressed ranges of the flat gradient hold this rank's own gradient;
    #: ``DistributedOptimizer.synchronize()``, clipping and optimizers without a fused
    #: kernel (Adam) decode it first (docs/fuse_update.md)
    fuse_update: bool = False
    #: allreduce algorithm of the uncompressed buckets: "auto" (by bucket size and
    #: topology; see collectives.choice.choose_algorithm) or one of dtnn.parallel.collectives:
    #: "mpi" (MPI_Iallreduce), "ring", "hier" (hierarchical, several ranks per node)
    algorithm: str = "auto"
    #: collective for compressed payloads: "auto" (by payload and world size),
    #: "allreduce", "allgather", "qring" (quantised reduce-scatter + allgather),
    #: "gtopk" (balanced global top-k), "sparse" (SparCML, sparse/dense switch)
    collective: str = "auto"
    #: BestOf picks the algorithm and the bucket size together online from step times:
    #: "auto" = when the job spans several nodes, "true", "false"
    tune: str = "auto"
    #: a dedicated thread compresses, communicates and decodes while backward runs
    comm_thread: bool = False
    #: average BatchNorm running statistics (and other float buffers) every step
    average_buffers: bool = True
    #: debug: after every step compare a checksum of parameters and buffers across ranks
    check_replicas: bool = False
    #: gradient compression spec "name:key=value,...", e.g. "topk:ratio=0.01",
    #: "qsgd:bits=8", "powersgd:rank=2,start_step=100" (see dtnn/compress)
    compress: str = "none"
    #: tensors with fewer elements than this are sent uncompressed, batched together
    min_compress_size: int = 1024
    #: uncompressed steps before compression starts
    compress_warmup_steps: int = 0
    #: seed of the compressors' random streams (stochastic rounding, random-k, PowerSGD)
    compress_seed: int = 0
    #: seconds one wait in a step's collectives may last before the job is aborted with
    #: a one-line error naming the ranks that did not arrive (0 = never; see
    #: dtnn/parallel/watchdog.py).  The test suite sets DTNN_STALL_TIMEOUT=0.
    stall_timeout: float = 300.0

    #: environment variable of each option
    ENV = {"mode": "DTNN_DIST_MODE", "bucket_mb": "DTNN_BUCKET_MB",
           "progress": "DTNN_DIST_PROGRESS",
           "progress_interval": "DTNN_PROGRESS_INTERVAL", "average_buffers": "DTNN_AVERAGE_BUFFERS",
           "check_replicas": "DTNN_CHECK_REPLICAS", "compress": "DTNN_COMPRESS",
           "stall_timeout": "DTNN_STALL_TIMEOUT",
           "algorithm": "DTNN_ALGORITHM", "collective": "DTNN_COLLECTIVE",
           "tune": "DTNN_DIST_TUNE", "comm_thread": "DTNN_COMM_THREAD",
           "defer_update": "DTNN_DEFER_UPDATE", "fuse_update": "DTNN_FUSE_UPDATE"}

    @classmethod
    def resolve(cls, options: Optional[Mapping[str, Any]] = None,
                env: Optional[Mapping[str, str]] = None) -> "DistOptions":
        env = os.environ if env is None else env
        out = cls()
        known = {f.name: f for f in fields(cls)}
        for name, var in cls.ENV.items():
            if env.get(var, "") != "":
                setattr(out, name, _parse(name, env[var], known[name].type, var))
        for name, value in (options or {}).items():
            if name not in known:
                raise ConfigError(f"dist.{name}: unknown option (known: "
                                  f"{', '.join(sorted(known))})")
            setattr(out, name, _parse(name, value, known[name].type, f"dist.{name}"))
        out.validate()
        return out

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"dist.mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not self.bucket_mb >= 0:
            raise ConfigError(f"dist.bucket_mb must be >= 0, got {self.bucket_mb!r}")
        if not self.progress_interval >= 0:
            raise ConfigError(f"dist.progress_interval must be >= 0 seconds, got "
                              f"{self.progress_interval!r}")
        if not self.stall_timeout >= 0:
            raise ConfigError(f"dist.stall_timeout must be >= 0 seconds (0 = off), got "
                              f"{self.stall_timeout!r}")
        from dtnn.parallel.collectives import ALGORITHMS, TRANSPORTS
        if self.algorithm != "auto" and self.algorithm not in ALGORITHMS:
            raise ConfigError(f"dist.algorithm must be auto or one of "
                              f"{', '.join(ALGORITHMS.names())}, got {self.algorithm!r}")
        if self.collective != "auto" and self.collective not in TRANSPORTS:
            raise ConfigError(f"dist.collective must be auto or one of "
                              f"{', '.join(TRANSPORTS.names())}, got {self.collective!r}")
        if self.tune in ("1", "yes", "on"):
            self.tune = "true"
        if self.tune in ("0", "no", "off"):
            self.tune = "false"
        if self.tune not in ("auto", "true", "false"):
            raise ConfigError(f"dist.tune must be auto, true or false, got {self.tune!r}")
        if self.min_compress_size < 0 or self.compress_warmup_steps < 0:
            raise ConfigError("dist.min_compress_size and dist.compress_warmup_steps must "
                              "be >= 0")
        if self.compress != "none":
            from dtnn.compress import check_spec
            check_spec(self.compress)

    def to_dict(self) -> Dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _parse(name: str, value: Any, typ: Any, where: str) -> Any:
    typ = ({"str": str, "float": float, "bool": bool, "int": int}.get(typ, typ)
           if isinstance(typ, str) else typ)
    if typ is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if typ is float:
        try:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if typ is int:
        try:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if name == "compress":  # a spec: keep its case-insensitive name, strip blanks
        return str(value).strip()
    return str(value).strip().lower()
