"""dtnn.torch, uncompressed: gradients are the mean of the ranks' gradients, a few steps
equal single-process training on the concatenated batch (SGD, Adam; DistributedOptimizer
and DataParallel), gradient accumulation, unused parameters, no_grad evaluation,
BatchNorm buffers, join() with uneven inputs, the tensor collectives."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import dtnn.torch as hvd  # noqa: E402
from torch import nn  # noqa: E402

from ._helpers import assert_all, max_rel_diff, world  # noqa: E402
from ._torch_helpers import (batch, flat_grads, flat_params, gathered_equal,  # noqa: E402
                             make_optimizer, net, shard, train)

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]


@pytest.fixture(scope="module", autouse=True)
def started():
    hvd.init(abort_on_error=False)
    torch.set_num_threads(1)


def _reference(kind, steps, per_rank, seed=0, bn=False):
    """One process, the global batch of every step."""
    model = net(seed, bn)
    opt = make_optimizer(kind, model.parameters())
    for s in range(steps):
        x, y = batch(s, per_rank * hvd.size())
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model


@pytest.mark.parametrize("bucket_mb,mode", [(0, "overlap"), (4, "overlap"), (0, "blocking")])
def test_gradients_are_the_mean(bucket_mb, mode):
    model = net(hvd.rank() + 10)             # different start: broadcast must fix it
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    x, y = shard(*batch(0, 8 * hvd.size()))
    nn.functional.cross_entropy(model(x), y).backward()
    expected = np.mean(world().allgather(flat_grads(model)), axis=0)
    opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                   named_parameters=model.named_parameters(),
                                   bucket_mb=bucket_mb, mode=mode)
    assert opt.exchange_stats()["mode"] == mode
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.synchronize()
    err = max_rel_diff(flat_grads(model), expected)
    assert_all(err < 1e-6, "mean of the ranks' gradients", f"{err:.3g}")
    flat = opt._dtnn_bridge.layout.flat
    lo, hi = flat.data_ptr(), flat.data_ptr() + flat.numel() * 4
    assert_all(all(lo <= p.grad.data_ptr() < hi for p in model.parameters()),
               ".grad are views of the exchange buffer (zero copy)")
    opt._dtnn_bridge.close()


@pytest.mark.parametrize("kind,mode", [("sgd", "overlap"), ("adam", "overlap"),
                                       ("sgd", None)])
def test_steps_equal_single_process_on_the_global_batch(kind, mode):
    ref = flat_params(_reference(kind, 4, 8))
    model = net(0) if hvd.rank() == 0 else net(hvd.rank() + 20)
    opt = make_optimizer(kind, model.parameters())
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(opt, root_rank=0)
    opt = hvd.DistributedOptimizer(opt, named_parameters=model.named_parameters(),
                                   bucket_mb=0.01, check_replicas=True, mode=mode)
    if mode is None:   # the default: one blocking allreduce when all ranks share a host
        assert opt.exchange_stats()["mode"] == ("blocking" if hvd.local_size() == hvd.size()
                                                else "overlap")
    train(model, opt, 4)
    err = max_rel_diff(flat_params(model), ref)
    assert_all(err < 2e-5, f"{kind}: == single process", f"{err:.3g}")
    assert_all(gathered_equal(flat_params(model)), f"{kind}: bit-identical")
    opt._dtnn_bridge.close()


def test_data_parallel_equals_single_process():
    ref = flat_params(_reference("sgd", 3, 8))
    model = net(0) if hvd.rank() == 0 else net(99)   # broadcast at construction
    dp = hvd.DataParallel(model, bucket_mb=0.01, mode="overlap")
    opt = make_optimizer("sgd", dp.parameters())
    train(model, opt, 3, wrapped=dp)
    err = max_rel_diff(flat_params(model), ref)
    assert_all(err < 2e-5, "DataParallel == single process", f"{err:.3g}")
    dp._bridge.close()


def test_gradient_accumulation():
    """Two backward passes of half batches per step == one pass on the whole batch."""
    ref = flat_params(_reference("sgd", 2, 8))
    model = net(0)
    opt = hvd.DistributedOptimizer(make_optimizer("sgd", model.parameters()),
                                   named_parameters=model.named_parameters(),
                                   backward_passes_per_step=2, bucket_mb=0.01,
                                   mode="overlap")
    for s in range(2):
        x, y = shard(*batch(s, 8 * hvd.size()))
        opt.zero_grad()
        for half in (slice(0, 4), slice(4, 8)):
            (nn.functional.cross_entropy(model(x[half]), y[half]) / 2).backward()
        opt.step()
    err = max_rel_diff(flat_params(model), ref)
    assert_all(err < 2e-5, "accumulation == whole batch", f"{err:.3g}")
    opt._dtnn_bridge.close()
    # DataParallel: no_sync() for all but the last micro-batch
    model = net(0)
    dp = hvd.DataParallel(model, bucket_mb=0.01, mode="overlap")
    opt = make_optimizer("sgd", dp.parameters())
    for s in range(2):
        x, y = shard(*batch(s, 8 * hvd.size()))
        opt.zero_grad()
        with dp.no_sync():
            (nn.functional.cross_entropy(dp(x[:4]), y[:4]) / 2).backward()
        (nn.functional.cross_entropy(dp(x[4:]), y[4:]) / 2).backward()
        opt.step()
    err = max_rel_diff(flat_params(model), ref)
    assert_all(err < 2e-5, "no_sync accumulation == whole batch", f"{err:.3g}")
    dp._bridge.close()


class Branchy(nn.Module):
    """``extra`` is used only when the batch says so (on some ranks, some steps)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.body = nn.Linear(6, 8)
        self.extra = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)
        self.never = nn.Linear(8, 8)

    def forward(self, x, use_extra):
        h = torch.relu(self.body(x))
        if use_extra:
            h = torch.relu(self.extra(h))
        return self.head(h)


@pytest.mark.parametrize("wrapper", ["optimizer", "dp", "dp-find-unused", "dp-blocking"])
def test_unused_parameters_do_not_hang(wrapper):
    model = Branchy()
    fwd = model
    if wrapper == "optimizer":
        opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                       named_parameters=model.named_parameters(),
                                       bucket_mb=0, mode="overlap")
    else:
        fwd = hvd.DataParallel(model, bucket_mb=0,
                               find_unused_parameters=wrapper.endswith("unused"),
                               mode="blocking" if wrapper.endswith("blocking") else "overlap")
        opt = torch.optim.SGD(fwd.parameters(), lr=0.1)
    grads = []
    for s in range(3):
        use = (hvd.rank() + s) % 2 == 0
        opt.zero_grad()
        out = fwd(torch.randn(4, 6), use) if wrapper == "optimizer" else fwd(torch.randn(4, 6),
                                                                             use)
        out.sum().backward()
        if wrapper == "optimizer":
            opt.synchronize()
        grads.append(model.extra.weight.grad.clone())
        with opt.skip_synchronize() if wrapper == "optimizer" else _null():
            opt.step()
    assert_all(gathered_equal(flat_params(model)), f"{wrapper}: bit-identical")
    assert_all(all(float(g.abs().sum()) > 0 for g in grads), "extra's gradient averaged in")
    assert_all(float(model.never.weight.grad.abs().sum()) == 0.0, "never-used: zero gradient")
    (opt._dtnn_bridge if wrapper == "optimizer" else fwd._bridge).close()


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_no_grad_evaluation_and_batchnorm_buffers():
    model = net(0, bn=True)
    dp = hvd.DataParallel(model, bucket_mb=0.01, check_replicas=True)
    opt = make_optimizer("sgd", dp.parameters())
    for s in range(2):
        train(model, opt, 1, start=s, wrapped=dp)
        dp.eval()
        with torch.no_grad():   # no hooks, no collectives: ranks may evaluate different data
            for _ in range(hvd.rank() + 1):
                dp(torch.randn(4, 1, 12, 12))
        dp.train()
    bn = model[1]
    assert_all(gathered_equal(bn.running_mean.numpy().copy())
               and gathered_equal(bn.running_var.numpy().copy()), "BN stats identical")
    assert_all(float(bn.running_var.sub(1).abs().sum()) > 0, "BN stats updated")
    dp._bridge.close()
    # DDP's mode: rank 0's buffers before every forward
    model = net(0, bn=True)
    dp = hvd.DataParallel(model, bucket_mb=0.01, broadcast_buffers=True)
    opt = make_optimizer("sgd", dp.parameters())
    train(model, opt, 2, wrapped=dp)
    dp(torch.randn(2, 1, 12, 12))   # the broadcast happens before a forward
    assert_all(gathered_equal(model[1].running_mean.numpy().copy()), "broadcast buffers")
    dp._bridge.close()


@pytest.mark.parametrize("mode,spec", [("overlap", "none"), ("blocking", "none"),
                                       ("blocking", "topk:ratio=0.5")])
def test_join_with_uneven_inputs(mode, spec):
    # uncompressed: join()'s flag rides in the gradient's allreduce (no control
    # collective); compressed: a control allreduce of its own
    model = net(0)
    opt = hvd.DistributedOptimizer(make_optimizer("sgd", model.parameters()),
                                   named_parameters=model.named_parameters(), bucket_mb=0.01,
                                   mode=mode, compress=spec)
    assert_all(opt._dtnn_bridge._flag_in_grads == (spec == "none"), "flag in the gradients")
    my_steps = 2 + hvd.rank()                # rank r has 2 + r batches
    for s in range(my_steps):
        x, y = batch(100 * hvd.rank() + s, 8)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    last = hvd.join()
    assert_all(last == hvd.size() - 1, "join returns the last rank to join", str(last))
    assert_all(gathered_equal(flat_params(model)), "replicas identical after join")
    assert_all(opt._dtnn_bridge._ctrl_req is None, "no control allreduce left in flight")
    opt._dtnn_bridge.close()


def test_collectives():
    r, p = hvd.rank(), hvd.size()
    t = torch.full((3, 2), float(r + 1))
    mean = (p + 1) / 2
    assert_all(torch.allclose(hvd.allreduce(t), torch.full((3, 2), mean)), "average")
    assert_all(torch.equal(hvd.allreduce(t, op=hvd.Sum), torch.full((3, 2), p * mean)), "sum")
    assert_all(float(hvd.allreduce(t, op=hvd.Max)[0, 0]) == p, "max")
    assert_all(float(hvd.allreduce(t, op=hvd.Min)[0, 0]) == 1, "min")
    assert_all(torch.equal(t, torch.full((3, 2), float(r + 1))), "out of place")
    h = hvd.allreduce_async_(t.t(), op=hvd.Sum)          # non-contiguous, in place
    assert_all(torch.equal(hvd.synchronize(h), torch.full((2, 3), p * mean)), "async")
    half = hvd.allreduce(torch.ones(4, dtype=torch.float16), op=hvd.Sum)
    assert_all(half.dtype == torch.float16 and float(half[0]) == p, "fp16 via fp32")
    g = hvd.allgather(torch.full((r + 1, 2), r, dtype=torch.int64))
    want = torch.cat([torch.full((q + 1, 2), q, dtype=torch.int64) for q in range(p)])
    assert_all(torch.equal(g, want), "allgather with uneven first dims")
    b = hvd.broadcast(torch.arange(5.0) + r, root_rank=p - 1)
    assert_all(torch.equal(b, torch.arange(5.0) + p - 1), "broadcast")
    assert_all(hvd.broadcast_object({"r": r}, root_rank=1) == {"r": 1}, "broadcast_object")


def test_broadcast_optimizer_state_into_a_fresh_optimizer():
    model = net(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.003 if hvd.rank() == 0 else 0.5)
    if hvd.rank() == 0:   # only rank 0 has state
        nn.functional.cross_entropy(model(torch.randn(4, 1, 12, 12)),
                                    torch.tensor([0, 1, 2, 3])).backward()
        opt.step()
    hvd.broadcast_optimizer_state(opt, root_rank=0)
    sd = opt.state_dict()
    assert_all(sd["param_groups"][0]["lr"] == 0.003 and len(sd["state"]) == 6,
               "state and hyper-parameters from rank 0")
    assert_all(gathered_equal(sd["state"][0]["exp_avg"].numpy().copy()), "same moments")
