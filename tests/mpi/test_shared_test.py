"""The ops in flight are advanced by one shared MPI_Testsome (``collectives.base.advance``,
#17) instead of one MPI_Testall per op.  Which test completes a request must not change
what the collectives compute: training with the shared test and with the per-op tests
(``SHARED_TEST = False``, the old path) gives bit-identical parameters and error-feedback
residuals, replicas bit-identical, at any world size >= 2; every op ends done; ops that
read their receive statuses (the sparse transports) test themselves; an error raised
while an op advances still reaches the caller."""
import numpy as np
import pytest

from dtnn.parallel.collectives import base as B
from dtnn.parallel.mpi import MPIContext

from ._helpers import assert_all, conv_net, dataset, train_distributed, world

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(180, method="thread")]


def _run(opts, shared, monkeypatch):
    """Train 4 steps; the parameters, this rank's compressor state (residuals) and the
    last step's ops."""
    monkeypatch.setattr(B, "SHARED_TEST", shared)
    ctx = MPIContext()
    model, _, red = train_distributed(ctx, lambda s: conv_net(s, bn=True), dataset("conv"),
                                      8, 4, "sgd", opts)
    ops = [op for k in red._bucket_ops for op in k] + [red._buf_op]
    state = red.state_dict(gather=False)
    red.close()
    return model.flat_params.copy(), state, ops


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


@pytest.mark.parametrize("opts", [
    {"algorithm": "ring"},
    {"algorithm": "mpi"},
    {"compress": "terngrad", "collective": "qring", "tune": "false"},
    {"compress": "int8", "collective": "qring", "tune": "false"},
    {"compress": "sign", "collective": "qring", "tune": "false"},
    {"compress": "sign", "collective": "allgather", "tune": "false"},
    {"compress": "randomk:ratio=0.05", "tune": "false"},
    {"compress": "topk:ratio=0.05", "collective": "gtopk", "tune": "false"},
    {"compress": "topk:ratio=0.05", "collective": "sparse", "tune": "false"},
], ids=["fp32-ring", "fp32-mpi", "terngrad-qring", "int8-qring", "sign-qring",
        "sign-allgather", "randomk", "topk-gtopk", "topk-sparse"])
def test_shared_test_trains_the_same_bits(opts, monkeypatch):
    base = dict(opts, bucket_mb=0.0005, check_replicas=True, min_compress_size=16)
    old = _run(base, False, monkeypatch)
    new = _run(base, True, monkeypatch)
    assert_all(np.array_equal(old[0], new[0]), "same parameters, per-op vs shared test")
    assert_all(_same(old[1], new[1]), "same compressor state (residuals), per-op vs shared")
    assert_all(all(op.done for op in new[2]), "every op of the last step done")


class _Pair(B.Op):
    """A ring-like hop with the next rank: ``hops`` rounds of Irecv + Isend."""

    def __init__(self, comm, tag, hops, fail_at=None):
        super().__init__()
        self.comm, self.tag, self.hops, self.fail_at = comm, tag, hops, fail_at
        self.k = 0
        self.got = []
        self._post()

    def _post(self):
        r, p = self.comm.rank, self.comm.size
        self.rb = np.empty(1, np.int64)
        self.sb = np.array([1000 * r + self.k], np.int64)
        self.reqs = [self.comm.Irecv(self.rb, (r - 1) % p, self.tag),
                     self.comm.Isend(self.sb, (r + 1) % p, self.tag)]

    def _advance(self):
        self.got.append(int(self.rb[0]))
        self.k += 1
        if self.fail_at is not None and self.k == self.fail_at:
            raise RuntimeError("hop failed")
        if self.k == self.hops:
            return True
        self._post()
        return False


class _Chain(B.ChainOp):
    def __init__(self, stages):
        super().__init__()
        self.stages = iter(stages)
        self.begin()

    def _next(self):
        return next(self.stages, None)


class _Own(_Pair):
    """Reads its own statuses (like the sparse transports): not in the shared test."""

    def progress(self):
        return B.Op.progress(self)


def test_every_hop_arrives_and_status_readers_test_themselves():
    comm = world().Dup()
    r, p = comm.rank, comm.size
    chain = _Chain([_Pair(comm, 3, 2), _Pair(comm, 4, 1)])
    ops = [_Pair(comm, 1, 5), _Own(comm, 2, 3), chain, B.DoneOp()]
    assert_all(ops[1].shared_reqs() is None, "an op with its own progress tests itself")
    assert_all(chain.shared_reqs() is chain.sub.reqs, "a chain offers its stage's requests")
    B.wait(ops)
    assert_all(all(op.done for op in ops), "every op done")
    left = (r - 1) % p
    assert_all(ops[0].got == [1000 * left + k for k in range(5)], "hops in order",
               str(ops[0].got))
    assert_all(ops[1].got == [1000 * left + k for k in range(3)], "own-test op's hops")
    comm.Free()


def test_an_error_while_advancing_reaches_the_caller():
    comm = world().Dup()
    op = _Pair(comm, 5, 3, fail_at=2)
    with pytest.raises(RuntimeError, match="hop failed"):
        B.wait([op, B.DoneOp()])
    comm.Barrier()   # every rank raised at the same hop; nothing is left in flight
    assert_all(not op.done and not any(op.reqs), "failed op left with no request posted")
    comm.Free()
