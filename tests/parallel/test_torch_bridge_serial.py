"""dtnn.torch in one process (a world of one), its errors, its import isolation, and
(as subprocesses under ``mpiexec -n 2`` with hard timeouts) the two example scripts and
the abort path of a failing rank."""
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from dtnn.errors import ConfigError, UserError  # noqa: E402

from ._util import ROOT, clean_env, mpiexec, run  # noqa: E402

pytestmark = pytest.mark.timeout(300, method="thread")
HERE = os.path.dirname(os.path.abspath(__file__))


def test_importing_dtnn_does_not_import_torch():
    code = ("import sys, dtnn, dtnn.parallel, dtnn.compress, dtnn.parallel.reducer, "
            "dtnn.cli.main; assert 'torch' not in sys.modules, 'torch imported'")
    res = subprocess.run([sys.executable, "-c", code], env=clean_env(), cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def hvd():
    import dtnn.torch as hvd
    hvd.init(abort_on_error=False)
    assert (hvd.rank(), hvd.size(), hvd.local_rank(), hvd.local_size()) == (0, 1, 0, 1)
    return hvd


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def _steps(model, opt, fwd=None, n=3):
    g = torch.Generator().manual_seed(1)
    for _ in range(n):
        opt.zero_grad()
        (fwd or model)(torch.randn(5, 6, generator=g)).square().mean().backward()
        opt.step()
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_world_of_one_trains_like_plain_torch(hvd):
    ref = _steps(_model(), torch.optim.Adam(_model().parameters()))
    ref_model = _model()
    ref = _steps(ref_model, torch.optim.Adam(ref_model.parameters()))
    m = _model()
    opt = hvd.DistributedOptimizer(torch.optim.Adam(m.parameters()),
                                   named_parameters=m.named_parameters(), compress="topk")
    assert isinstance(opt, torch.optim.Adam)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1)   # schedulers accept it
    assert torch.equal(_steps(m, opt), ref)
    sched.step()
    opt._dtnn_bridge.close()
    m = _model()
    dp = hvd.DataParallel(m)
    assert torch.equal(_steps(m, torch.optim.Adam(dp.parameters()), fwd=dp), ref)
    dp._bridge.close()
    t = torch.arange(4.0)
    assert torch.equal(hvd.allreduce(t), t) and torch.equal(hvd.allgather(t), t)
    assert torch.equal(hvd.broadcast(t, 0), t) and hvd.join() == 0


def test_bad_input_gives_clear_errors(hvd):
    m = _model().double()
    with pytest.raises(UserError, match="float64.*float32"):
        hvd.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=0.1))
    m = _model()
    with pytest.raises(ConfigError, match="nosuch"):
        hvd.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=0.1), compress="nosuch")
    with pytest.raises(UserError, match="named_parameters"):
        hvd.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=0.1),
                                 named_parameters=list(m.named_parameters())[:1])
    with pytest.raises(UserError, match="sync_buffers"):
        hvd.DataParallel(m, sync_buffers="sometimes")
    opt = hvd.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=0.1),
                                   named_parameters=m.named_parameters())
    with pytest.raises(UserError, match="already handled"):
        hvd.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=0.1))
    m(torch.randn(3, 6)).sum().backward()
    with pytest.raises(UserError, match="zero_grad"):
        opt.zero_grad()
    with pytest.raises(RuntimeError, match="backward_passes_per_step"):
        m(torch.randn(3, 6)).sum().backward()
    opt._dtnn_bridge.close()


def test_set_to_none_gradients_are_copied_into_the_buffer(hvd):
    m = _model()
    opt = hvd.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=0.1),
                                   named_parameters=m.named_parameters())
    m.zero_grad(set_to_none=True)            # torch's module default: .grad = None
    m(torch.randn(3, 6)).sum().backward()    # autograd writes fresh tensors
    opt.step()
    flat = opt._dtnn_bridge.layout.flat
    assert all(flat.data_ptr() <= p.grad.data_ptr() < flat.data_ptr() + 4 * flat.numel()
               for p in m.parameters())
    opt._dtnn_bridge.close()


def _mpirun(args, timeout):
    return run([mpiexec(), "-n", "2", sys.executable, *args], timeout=timeout)


def test_examples_run_under_mpiexec(tmp_path):
    ck = str(tmp_path / "ck.pt")
    common = ["examples/torch_horovod_style.py", "--train-samples", "2048",
              "--test-samples", "1000", "--compress", "topk:ratio=0.05", "--checkpoint", ck]
    code, out, err, _ = _mpirun(common + ["--epochs", "1"], 180)
    assert code == 0, err[-3000:]
    assert "epoch 1:" in out and "test accuracy" in out
    code, out, err, _ = _mpirun(common + ["--epochs", "2", "--resume"], 180)
    assert code == 0, err[-3000:]
    assert "epoch 2:" in out and "epoch 1:" not in out      # resumed after epoch 1
    acc = float(out.split("test accuracy")[1].split()[0])
    assert acc > 0.5, out
    code, out, err, _ = _mpirun(["examples/torch_ddp_style.py", "--steps", "40",
                                 "--accumulate", "2", "--compress", "powersgd:rank=2"], 180)
    assert code == 0, err[-3000:]
    assert "test accuracy" in out and float(out.split("accuracy")[1]) > 0.4, out


def test_a_failing_rank_aborts_the_whole_job():
    code, out, err, seconds = _mpirun([os.path.join(HERE, "torch_fault_job.py")], 90)
    assert code not in (0, None, 7), f"exit {code}\n{err[-3000:]}"
    assert seconds < 45
    assert "[rank 1/2] RuntimeError: injected failure in the training loop" in err, err[-3000:]
