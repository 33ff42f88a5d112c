"""``dtnn.torch``: dtnn's compressed MPI gradient exchange for PyTorch models.

Horovod-shaped (port a Horovod script by changing its import)::

    import dtnn.torch as hvd
    hvd.init()
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.01 * hvd.size())
    opt = hvd.DistributedOptimizer(opt, named_parameters=model.named_parameters(),
                                   compress="topk:ratio=0.01")
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(opt, root_rank=0)

DDP-shaped::

    model = dtnn.torch.DataParallel(model, compress="powersgd:rank=2")

Run under ``mpiexec -n N python script.py`` (or srun / ``launch/simcluster.sh run``);
a plain ``python script.py`` is a world of one.  Every dtnn compressor works
(``none, fp16, bf16, int8, qsgd, terngrad, sign, topk, randomk, powersgd``) with the
collective dtnn picks for it, error feedback and checkpointed state; replicas stay
bit-identical (``check_replicas``).  Importing ``dtnn`` never imports torch; this
package needs it.
"""
try:
    import torch as _torch  # noqa: F401
except ImportError as _exc:  # pragma: no cover - torch is a dependency of the bridge
    raise ImportError("dtnn.torch needs PyTorch (pip install torch==2.13.0 --index-url "
                      "https://download.pytorch.org/whl/cpu)") from _exc

from dtnn.torch._runtime import (abort, comm, context, cross_rank, cross_size, init,
                                 is_initialized, local_rank, local_size, mpi_enabled, rank,
                                 shutdown, size)
from dtnn.torch.data_parallel import DataParallel
from dtnn.torch.ops import (Adasum, Average, Compression, Handle, Max, Min, Product, Sum,
                            allgather, allgather_object, allreduce, allreduce_,
                            allreduce_async, allreduce_async_, barrier, broadcast,
                            broadcast_, broadcast_object, broadcast_optimizer_state,
                            broadcast_parameters, join, poll, synchronize)
from dtnn.torch.optimizer import DistributedOptimizer, is_distributed


def mpi_threads_supported() -> bool:
    from mpi4py import MPI
    return MPI.Query_thread() == MPI.THREAD_MULTIPLE


def check_replicas(obj) -> None:
    """Collective: ``ReplicaMismatchError`` naming the ranks whose parameters (and
    averaged buffers) differ from rank 0's, bit for bit.  ``obj``: a
    ``DistributedOptimizer`` or a ``DataParallel``."""
    obj.check_replicas()


__all__ = [
    "init", "shutdown", "is_initialized", "rank", "size", "local_rank", "local_size",
    "cross_rank", "cross_size", "comm", "context", "mpi_enabled", "mpi_threads_supported",
    "abort", "DistributedOptimizer", "DataParallel", "is_distributed", "check_replicas",
    "broadcast_parameters", "broadcast_optimizer_state", "broadcast_object",
    "allgather_object", "allreduce", "allreduce_", "allreduce_async", "allreduce_async_",
    "allgather", "broadcast", "broadcast_", "synchronize", "poll", "barrier", "join",
    "Compression", "Handle", "Average", "Sum", "Min", "Max", "Product", "Adasum",
]
