"""Online auto-tuning: ``BestOf`` (pick the fastest interchangeable function per problem
key while the real work runs), its on-disk cache and the run report.

Process-wide tuners are obtained with ``get_tuner(name, alternatives, ...)`` so every
layer with the same problem key shares one decision; ``configure()`` sets the options
(rounds, cache directory, forced alternative, accuracy tolerance, tuning budget, the
job's context and the scope of agreement) they are created with.

Scope (``TuneOptions.scope``): with ``"job"`` (the default) the training tuners reduce
their timings over every rank of the job, so all ranks run the same variant per layer
shape; with ``"node"`` only the ranks of one host agree.  A synchronous data-parallel
step runs at the pace of the slowest rank, and ranks that chose differently are each
slower on some layers (each waits for the other where it is the faster).  The
simulated cluster (one host per rank) showed it can happen: the two hosts' cache files
held different winners for 4 of their 28 decisions (vgg11_bn shapes of 32x32 inputs;
benchmarks/results/scaling.md, #17).  ``"node"`` is for clusters whose nodes differ
(CPU, ISA, threads): their shapes' keys and candidate lists may differ, and a job-wide
reduction needs every rank to make the same tuning calls.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from dtnn.tune.bestof import BestOf, TuneState, TuningBudget, key_str
from dtnn.tune.cache import TuneCache, default_cache_dir
from dtnn.tune.pretune import pretune

__all__ = ["BestOf", "TuneState", "TuneCache", "TuneOptions", "TuningBudget", "configure",
           "current_comm", "get_tuner", "SCOPES", "pretune", "tuners", "reset", "collect",
           "key_str", "default_cache_dir", "current_threads", "budget"]


@dataclass
class TuneOptions:
    rounds: int = 5
    warmup: int = 1
    prune_after: int = 2
    prune_ratio: float = 1.5
    gross_ratio: float = 4.0
    use_cache: bool = True
    cache_dir: str = ""
    force: Dict[str, str] = field(default_factory=dict)   # tuner name -> alternative
    #: alternatives whose normwise error on a layer's data exceeds this are excluded
    #: for that layer (0: no screen)
    max_error: float = 1e-4
    #: total tuning cost (seconds beyond the best alternatives) per process; then the
    #: remaining choices are made on what was measured (0: no limit)
    max_seconds: float = 60.0
    #: convolution variants BestOf races (empty: dtnn.conv.bestof.CANDIDATES)
    conv_candidates: Tuple[str, ...] = ()
    #: ranks that agree on each decision: "job" (all) or "node" (those of one host)
    scope: str = "job"

    def __post_init__(self):
        if self.scope not in SCOPES:
            raise ValueError(f"tune.scope = {self.scope!r}: expected one of "
                             f"{', '.join(SCOPES)}")


SCOPES = ("job", "node")


class _JobScope:
    """What BestOf calls its node communicator, reducing over every rank of the job
    (``ctx.job_allreduce``) instead of the node."""

    def __init__(self, ctx):
        self.ctx = ctx

    def node_allreduce(self, values, op: str = "max"):
        return self.ctx.job_allreduce(values, op)


def _scoped(comm, scope: str):
    """The communicator the tuners reduce over: the job's when asked for and the
    context has one (a context without ``job_allreduce`` is node-scoped)."""
    if comm is not None and scope == "job" and hasattr(comm, "job_allreduce"):
        return _JobScope(comm)
    return comm


_options = TuneOptions()
_comm = None
_tuner_comm = None     # _comm, or its job-wide view (scope "job")
_tuners: Dict[str, BestOf] = {}
_cache: Optional[TuneCache] = None
_budget = TuningBudget(_options.max_seconds)


def configure(options: Optional[TuneOptions] = None, comm=None) -> TuneOptions:
    """Set the options (and the job's context: an object with ``node_allreduce(array,
    op)`` and, for ``scope = "job"``, ``job_allreduce(array, op)``) for tuners created
    from now on; drops existing ones."""
    global _options, _comm, _tuner_comm, _cache, _budget
    _options = options or TuneOptions()
    _comm = comm
    _tuner_comm = _scoped(comm, _options.scope)
    _cache = None
    _tuners.clear()
    _budget = TuningBudget(_options.max_seconds)
    return _options


def options() -> TuneOptions:
    return _options


def current_comm():
    """The context given to the last ``configure`` (None if none)."""
    return _comm


def _get_cache() -> Optional[TuneCache]:
    global _cache
    if not _options.use_cache:
        return None
    if _cache is None:
        _cache = TuneCache(default_cache_dir(_options.cache_dir or None))
    return _cache


def get_tuner(name: str, alternatives, local: bool = False, **kwargs) -> BestOf:
    """The process-wide BestOf called ``name`` (created on first use).

    ``local=True``: decide on this rank's timings alone (no reduction).  Use it
    for calls whose sequence may differ between ranks -- evaluation shards need not
    have the same number or sizes of batches, and a node collective issued by one
    rank only would hang."""
    bo = _tuners.get(name)
    if bo is None:
        kw = dict(rounds=_options.rounds, warmup=_options.warmup,
                  prune_after=_options.prune_after, prune_ratio=_options.prune_ratio,
                  gross_ratio=_options.gross_ratio, comm=None if local else _tuner_comm,
                  cache=_get_cache(), force=_options.force.get(name),
                  max_error=_options.max_error, budget=_budget)
        kw.update(kwargs)
        bo = _tuners[name] = BestOf(name, alternatives, **kw)
    return bo


def tuners() -> Dict[str, BestOf]:
    """The process-wide tuners by name."""
    return dict(_tuners)


def budget() -> TuningBudget:
    """The process's tuning budget (shared by the tuners made from now on)."""
    return _budget


def reset() -> None:
    """Drop every tuner (decisions in the on-disk cache stay) and restart the budget."""
    global _budget
    _tuners.clear()
    _budget = TuningBudget(_options.max_seconds)


def collect() -> List[Dict[str, Any]]:
    """Report rows of every tuner (what ``tune/report`` writes)."""
    rows: List[Dict[str, Any]] = []
    for bo in _tuners.values():
        rows.extend(bo.report())
    return rows


_threads_fn = None


def current_threads() -> int:
    """OpenMP threads our kernels would use now (part of every tuning key)."""
    global _threads_fn
    if _threads_fn is None:
        try:
            from dtnn._kernels._im2col import openmp_max_threads
            _threads_fn = openmp_max_threads
        except ImportError:
            _threads_fn = lambda: 1  # noqa: E731
    return _threads_fn()
