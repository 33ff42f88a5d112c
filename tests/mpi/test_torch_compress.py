"""dtnn.torch with every compressor: replicas bit-identical after every step, the
error-feedback identity and unbiasedness through the bridge, checkpoint -> resume
equals an uninterrupted run (DistributedOptimizer and DataParallel)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import dtnn.torch as hvd  # noqa: E402
from torch import nn  # noqa: E402

from ._helpers import assert_all, max_rel_diff, world  # noqa: E402
from ._torch_helpers import (flat_params, gathered_equal, make_optimizer, net,  # noqa: E402
                             roundtrip, train)

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]

SPECS = ["fp16", "bf16", "int8", "qsgd:bits=8", "qsgd:bits=4", "terngrad", "sign",
         "topk:ratio=0.05", "randomk:ratio=0.1", "powersgd:rank=2"]
OPTS = dict(min_compress_size=64, bucket_mb=0.01, mode="overlap")


@pytest.fixture(scope="module", autouse=True)
def started():
    hvd.init(abort_on_error=False)
    torch.set_num_threads(1)


def _wrapped(spec, kind="sgd", seed=0, bn=False, **extra):
    model = net(seed, bn)
    opt = hvd.DistributedOptimizer(make_optimizer(kind, model.parameters()),
                                   named_parameters=model.named_parameters(),
                                   compress=spec, module=model, **dict(OPTS, **extra))
    return model, opt


@pytest.mark.parametrize("spec,mode", [(s, "overlap") for s in SPECS]
                         + [(s, "blocking") for s in ("fp16", "topk:ratio=0.05",
                                                      "powersgd:rank=2")])
def test_every_compressor_keeps_replicas_identical(spec, mode):
    model, opt = _wrapped(spec, bn=True, check_replicas=True, mode=mode)   # checked each step
    start = flat_params(model)
    train(model, opt, 3)
    opt.check_replicas()
    assert_all(gathered_equal(flat_params(model)), f"{spec}: bit-identical")
    moved = max_rel_diff(flat_params(model), start)
    assert_all(np.isfinite(flat_params(model)).all() and moved > 1e-4, f"{spec}: trained",
               f"{moved:g}")
    s = opt.exchange_stats()
    assert_all(s["compress"] == spec and s["sent_bytes"] < s["payload_bytes"],
               f"{spec}: sends less than fp32", str(s["sent_bytes"]))
    opt._dtnn_bridge.close()


def _set_grads(opt, grads: np.ndarray) -> None:
    opt.zero_grad()
    opt._dtnn_bridge.layout.flat_grads[...] = grads


def _units(opt):
    """(start, stop, residual) of every compressed unit (bucket_mb=0: contiguous)."""
    ex = opt._dtnn_bridge.reducer.exchange
    out = []
    for plan in ex.plans:
        if plan.unit is not None:
            (a, b), = plan.ranges
            out.append((a, b, ex.ef.residual(plan.unit.index, plan.unit.size)))
    return out


@pytest.mark.parametrize("spec", ["topk:ratio=0.05", "sign", "powersgd:rank=2",
                                  "randomk:ratio=0.1", "qsgd:bits=4,ef=true"])
def test_error_feedback_identity(spec):
    """mean_r(g_r + e_r) == exchanged average + mean_r(e_r'): nothing is lost."""
    model, opt = _wrapped(spec, bucket_mb=0)
    n = opt._dtnn_bridge.layout.flat_grads.size
    rng = np.random.default_rng(world().rank)
    for step in range(3):
        g = rng.standard_normal(n).astype(np.float32)
        before = np.zeros(n, np.float64)
        for a, b, e in _units(opt):
            before[a:b] = e
        _set_grads(opt, g)
        opt.synchronize()
        with opt.skip_synchronize():
            pass
        after = np.zeros(n, np.float64)
        mask = np.zeros(n, bool)
        for a, b, e in _units(opt):
            after[a:b] = e
            mask[a:b] = True
        got = opt._dtnn_bridge.layout.flat_grads.astype(np.float64)
        lhs = np.mean(world().allgather(g + before), axis=0)
        rhs = got + np.mean(world().allgather(after), axis=0)
        err = float(np.max(np.abs(lhs - rhs)[mask]))
        assert_all(mask.any() and err < 1e-4 * float(np.max(np.abs(lhs))),
                   f"{spec} step {step}: EF identity", f"{err:.3g}")
    opt._dtnn_bridge.close()


@pytest.mark.parametrize("spec", ["qsgd:bits=4", "terngrad", "int8"])
def test_unbiased_compressors_average_to_the_mean(spec):
    """Over K steps with the same gradients the exchanged averages converge to the true
    mean: ||mean_K - g||^2 stays within a few times the sampling variance / K."""
    model, opt = _wrapped(spec, bucket_mb=0)
    n = opt._dtnn_bridge.layout.flat_grads.size
    g = np.random.default_rng(world().rank).standard_normal(n).astype(np.float32)
    truth = np.mean(world().allgather(g.astype(np.float64)), axis=0)
    K = 64
    samples = np.empty((K, n))
    for k in range(K):
        _set_grads(opt, g)
        opt.synchronize()
        samples[k] = opt._dtnn_bridge.layout.flat_grads
        opt._dtnn_synced = False
    var = float(np.mean(np.sum((samples - samples.mean(0)) ** 2, axis=1)))
    bias2 = float(np.sum((samples.mean(0) - truth) ** 2))
    assert_all(var > 0 and bias2 < 3.0 * var / K, f"{spec}: unbiased",
               f"bias^2 {bias2:.4g} vs var/K {var / K:.4g}")
    opt._dtnn_bridge.close()


@pytest.mark.parametrize("spec", ["topk:ratio=0.05", "powersgd:rank=2", "qsgd:bits=4",
                                  "none"])
def test_checkpoint_resume_equals_uninterrupted(spec):
    model, opt = _wrapped(spec, kind="adam")
    train(model, opt, 6)
    want = flat_params(model)
    opt._dtnn_bridge.close()

    model, opt = _wrapped(spec, kind="adam")
    train(model, opt, 3)
    state = {"model": model.state_dict(), "opt": opt.state_dict(all_ranks=True)}
    ckpt = hvd.broadcast_object(roundtrip(state) if hvd.rank() == 0 else None)  # one file
    opt._dtnn_bridge.close()
    model, opt = _wrapped(spec, kind="adam", seed=5)        # a fresh process, other init
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["opt"])
    train(model, opt, 3, start=3)
    got = flat_params(model)
    assert_all(np.array_equal(got, want), f"{spec}: resume == uninterrupted",
               f"{max_rel_diff(got, want):.3g}")
    opt._dtnn_bridge.close()


def test_data_parallel_checkpoint_resume():
    spec = "powersgd:rank=2"

    def fresh(seed):
        model = net(seed)
        dp = hvd.DataParallel(model, compress=spec, **OPTS)
        return model, dp, make_optimizer("sgd", dp.parameters())

    model, dp, opt = fresh(0)
    train(model, opt, 6, wrapped=dp)
    want = flat_params(model)
    dp._bridge.close()
    model, dp, opt = fresh(0)
    train(model, opt, 3, wrapped=dp)
    state = {"dp": dp.state_dict(all_ranks=True), "opt": opt.state_dict()}
    ckpt = hvd.broadcast_object(roundtrip(state) if hvd.rank() == 0 else None)
    assert "_extra_state" in ckpt["dp"]
    dp._bridge.close()
    model, dp, opt = fresh(7)
    dp.load_state_dict(ckpt["dp"])
    opt.load_state_dict(ckpt["opt"])
    train(model, opt, 3, start=3, wrapped=dp)
    assert_all(np.array_equal(flat_params(model), want), "DataParallel resume")
    dp._bridge.close()
