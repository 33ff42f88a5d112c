"""``MPIContext``: the process context of a data-parallel job under mpiexec/srun.

Every rank holds a full replica of the model and optimizer.  Ranks read disjoint
shards of each global batch (``BatchLoader(rank=, world_size=)``), average their
gradients with a ``GradientReducer`` and so take identical optimizer steps.

Communicators
    ``comm``       a ``Clone()`` of COMM_WORLD: dtnn's own traffic can never match a
                   user's messages on COMM_WORLD.
    ``node_comm``  the ranks sharing this host (``Split_type(COMM_TYPE_SHARED)``);
                   gives ``local_rank``/``local_size`` (threads per rank) and is kept for
                   per-node tuning (hierarchical reductions).
    ``leader_comm`` one rank (local rank 0) per host; None on the other ranks.

Start-up consistency (``check_consistency``, run by ``make_reducer`` and
``sync_model``): a sha256 of the model's architecture JSON and the dtnn version is
allgathered; any difference is a ``UserError`` naming the ranks.  ``sync_model`` then
broadcasts parameters, buffers (BN running statistics) and optimizer state from rank
0: replicas never depend on equal seeds.

Dropout: every rank must draw *different* masks (each rank's shard is different
data; identical masks would correlate the replicas' noise), so ``make_reducer``
reseeds the random layers with ``model.reseed_rngs(base, rank)``, where ``base`` is
drawn from rank 0's current layer RNG state and broadcast.  The masks are therefore
reproducible for a given (seed, world size), and a 1-rank job keeps exactly the
serial stream.
"""
from __future__ import annotations

import hashlib
import json
import sys
from typing import Any, Dict, List, Optional

import numpy as np

from dtnn.parallel.watchdog import guard as stall_guard
from dtnn.errors import UserError
from dtnn.parallel.context import Context, ReducerOptions, resolve_options
from dtnn.parallel.reducer import GradientReducer, float_buffers


class MPIContext(Context):
    """The ``Context`` of one rank of an MPI job (see the module docstring)."""

    def __init__(self, comm=None):
        from mpi4py import MPI
        self.MPI = MPI
        base = MPI.COMM_WORLD if comm is None else comm
        self.comm = base.Clone()
        self.comm.Set_name("dtnn")
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.node_comm = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank = self.node_comm.Get_rank()
        self.local_size = self.node_comm.Get_size()
        color = 0 if self.local_rank == 0 else MPI.UNDEFINED
        leader = self.comm.Split(color, key=self.rank)
        self.leader_comm = None if leader == MPI.COMM_NULL else leader
        self.num_nodes = int(self.comm.allreduce(1 if self.local_rank == 0 else 0))
        self.host = MPI.Get_processor_name()
        self._topology = None

    def topology(self):
        """The gradient exchange's communicators (made once, collectively, on first
        use): a duplicate of ``comm`` and of ``node_comm``, so exchange messages never
        meet any other traffic."""
        if self._topology is None:
            from dtnn.parallel.collectives import Topology
            self._topology = Topology(self.comm.Dup(), self.node_comm.Dup())
        return self._topology

    # --- the Context protocol ------------------------------------------------------
    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum over all ranks (the guard's window sums, epoch records, evaluation).
        Posted non-blocking and waited for like the exchange's collectives
        (``collectives.wait``): MPICH's blocking allreduce spins, and with more ranks
        than cores a spinning rank keeps the core from the neighbour it waits for."""
        from dtnn.parallel.collectives.base import ReqOp, wait
        arr = np.ascontiguousarray(values)
        out = np.empty_like(arr)
        with stall_guard("allreduce of metrics"):
            wait([ReqOp([self.comm.Iallreduce(arr, out, op=self.MPI.SUM)])])
        return out

    def broadcast_object(self, obj: Any) -> Any:
        with stall_guard("broadcast"):
            return self.comm.bcast(obj, root=0)

    def gather_object(self, obj: Any) -> Any:
        """Every rank's ``obj`` as a list on rank 0 (None elsewhere)."""
        with stall_guard("gather"):
            return self.comm.gather(obj, root=0)

    def node_allreduce(self, values: np.ndarray, op: str = "max") -> np.ndarray:
        """Reduce over the ranks of this node only (the auto-tuner with ``tune.scope =
        "node"``: ranks sharing a host agree on a choice; other hosts may differ)."""
        return self._float_allreduce(self.node_comm, values, op, "node allreduce")

    def job_allreduce(self, values: np.ndarray, op: str = "max") -> np.ndarray:
        """Reduce over every rank of the job (the auto-tuner with ``tune.scope = "job"``:
        all ranks run the same variant per layer shape)."""
        return self._float_allreduce(self.comm, values, op, "job allreduce")

    def _float_allreduce(self, comm, values: np.ndarray, op: str, what: str) -> np.ndarray:
        """``values`` as float64 reduced by ``op`` (sum, max, min) over ``comm``."""
        ops = {"sum": self.MPI.SUM, "max": self.MPI.MAX, "min": self.MPI.MIN}
        arr = np.ascontiguousarray(values, dtype=np.float64)
        out = np.empty_like(arr)
        with stall_guard(what):
            comm.Allreduce(arr, out, op=ops[op])
        return out

    def barrier(self) -> None:
        with stall_guard("barrier"):
            self.comm.Barrier()

    def make_reducer(self, model, options: ReducerOptions = None) -> GradientReducer:
        """Check the replicas match, give dropout a per-rank stream, build the reducer
        with ``options`` (the config's ``[dist]`` section, see ``DistOptions``)."""
        opts = resolve_options(options)
        self.check_consistency(model)
        self.reseed_dropout(model)
        return GradientReducer(self.comm, model, opts, topology=self.topology())

    def sync_model(self, model, optimizer=None) -> None:
        """Rank 0's parameters, buffers and optimizer state on every rank."""
        with stall_guard("start-up synchronisation"):
            self._sync_model(model, optimizer)

    def _sync_model(self, model, optimizer=None) -> None:
        self.check_consistency(model)
        self.comm.Bcast(model.flat_params, root=0)
        bufs = model.buffers()
        for key in sorted(bufs):
            arr = bufs[key]
            if arr.flags.c_contiguous:
                self.comm.Bcast(arr, root=0)
            else:  # pragma: no cover - layers keep contiguous buffers
                tmp = np.ascontiguousarray(arr)
                self.comm.Bcast(tmp, root=0)
                np.copyto(arr, tmp)
        if optimizer is not None:
            self.sync_optimizer(optimizer)

    def sync_optimizer(self, optimizer) -> None:
        state = optimizer.state_dict()
        skeleton = {k: (("array", v.shape, v.dtype.str) if isinstance(v, np.ndarray) else v)
                    for k, v in state.items()}
        skeleton = self.comm.bcast(skeleton, root=0)
        new: Dict[str, Any] = {}
        for key in sorted(skeleton):
            spec = skeleton[key]
            if isinstance(spec, tuple) and len(spec) == 3 and spec[0] == "array":
                arr = state.get(key) if self.rank == 0 else None
                if arr is None or arr.shape != tuple(spec[1]) or arr.dtype.str != spec[2]:
                    arr = np.empty(spec[1], np.dtype(spec[2]))
                arr = np.ascontiguousarray(arr)
                self.comm.Bcast(arr, root=0)
                new[key] = arr
            else:
                new[key] = spec
        if self.rank != 0:
            optimizer.load_state_dict(new)

    def abort(self, code: int = 1) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.MPI.COMM_WORLD.Abort(code)

    # --- consistency ---------------------------------------------------------------------
    def check_consistency(self, model) -> None:
        """UserError unless every rank has the same architecture and dtnn version."""
        from dtnn import __version__
        text = model.config_json()  # always collective: no per-rank caching
        digest = hashlib.sha256((text + "\0" + __version__).encode()).hexdigest()
        with stall_guard("start-up consistency check"):
            table = self.comm.allgather((digest, __version__, self.host,
                                         int(model.flat_params.size)))
        groups: Dict[str, List[int]] = {}
        for r, row in enumerate(table):
            groups.setdefault(row[0], []).append(r)
        if len(groups) > 1:
            ref = table[0][0]
            bad = [r for r, row in enumerate(table) if row[0] != ref]
            detail = "; ".join(f"rank {r} ({table[r][2]}): dtnn {table[r][1]}, "
                               f"{table[r][3]} parameters" for r in [0] + bad[:8])
            raise UserError(f"ranks disagree on the model or dtnn version: rank(s) "
                            f"{', '.join(map(str, bad))} differ from rank 0 ({detail}); "
                            f"use the same config, code and installation on every rank")

    def reseed_dropout(self, model) -> None:
        """A different, reproducible dropout stream per rank (see module docstring)."""
        if self.size == 1:
            return
        base = None
        if self.rank == 0:
            for layer in model.layers:
                if getattr(layer, "uses_rng", False) and layer.rng is not None:
                    state = json.dumps(layer.rng.bit_generator.state, sort_keys=True, default=str)
                    base = int.from_bytes(hashlib.sha256(state.encode()).digest()[:8], "little")
                    break
        base = self.comm.bcast(base, root=0)
        if base is not None:
            model.reseed_rngs(base, self.rank)

    def describe(self) -> str:
        return (f"rank {self.rank} of {self.size} on {self.host} (local {self.local_rank} of "
                f"{self.local_size}, {self.num_nodes} host(s))")


__all__ = ["MPIContext", "float_buffers"]
