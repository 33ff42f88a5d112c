"""``dtnn.infer.InferenceModel``: the fused plan against the model's own (unfused)
inference forward and the float64 torch twin, for every layer type a plan handles,
every kernel choice, the compiled executor and the numpy twins, at each ISA level
(in-process caps and a fresh process with DTNN_ISA set)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from dtnn._kernels import isa as isa_mod
from dtnn.infer import InferenceModel
from dtnn.infer.steps import AffineStep, ConvStep, LayerStep
from dtnn.models import build_model
from tests.infer._helpers import trained_like
from tests.prune._models import all_followers, gap_model, global_pools, kmax_model, zoo

try:
    import dtnn._kernels._infer as _ext
except ImportError:
    _ext = None
HAVE_EXT = _ext is not None and isa_mod.requested(strict=False) != "numpy"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


MODELS = {
    "all_followers": lambda: all_followers(dropout=0.3),
    "global_pools": global_pools, "gap": gap_model, "kmax": kmax_model,
    "cnet": lambda: zoo("cnet"), "vgg11_bn": lambda: zoo("vgg11_bn"),
    "lenet": lambda: zoo("lenet"), "simplecnn": lambda: zoo("simplecnn"),
    "mobilenet_v2": lambda: build_model("mobilenet_v2", (3, 32, 32), 10, seed=0, width=0.25),
}


def rel(a, ref):
    ref = np.asarray(ref, np.float64)
    return float(np.abs(np.asarray(a, np.float64) - ref).max() / max(np.abs(ref).max(), 1e-30))


def _x(model, n, seed=0):
    return np.random.default_rng(seed).standard_normal((n,) + tuple(model.input_shape)
                                                       ).astype(np.float32)


@pytest.mark.parametrize("compiled", [pytest.param(True, marks=pytest.mark.skipif(
    not HAVE_EXT, reason="compiled inference kernels unavailable")), False],
    ids=["compiled", "twins"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_plan_matches_the_unfused_model(name, compiled):
    model = trained_like(MODELS[name]())
    big = name in ("mobilenet_v2", "vgg11_bn")      # every kernel is covered by the others
    for n in ((2,) if big else (1, 3)):
        x = _x(model, n)
        ref = model.forward(x, training=False)
        kernels = ("heuristic",) if big else ("heuristic", "px", "ch", "gemm")
        for kernel in kernels + (("auto",) if compiled and not big else ()):
            y = InferenceModel(model, kernel=kernel, compiled=compiled)(x)
            assert y.shape == ref.shape and y.dtype == np.float32
            assert rel(y, ref) < 2e-5, (kernel, n)


@pytest.mark.parametrize("name", ["all_followers", "cnet", "global_pools"])
def test_plan_matches_the_float64_torch_twin(name):
    from dtnn.export.torch_twin import torch_twin
    model = trained_like(MODELS[name]())
    try:
        twin = torch_twin(model).double().eval()
    except Exception as exc:   # a layer the twin does not mirror
        pytest.skip(f"no torch twin: {exc}")
    x = _x(model, 4, seed=2)
    with torch.no_grad():
        ref = twin(torch.from_numpy(x.astype(np.float64))).numpy()
    assert rel(InferenceModel(model, kernel="heuristic")(x), ref) < 2e-5
    assert rel(InferenceModel(model, kernel="heuristic", compiled=False)(x), ref) < 2e-5


def test_what_the_plan_folds():
    model = trained_like(all_followers(dropout=0.3))
    steps = InferenceModel(model, kernel="heuristic").steps
    convs = [s for s in steps if isinstance(s, ConvStep)]
    # conv+BN+PReLU, conv+ReLU, dense+BN+PReLU, dense+ReLU, dense: BN and activations gone
    assert [len(s.fused) for s in convs] == [2, 1, 2, 1, 0]
    assert not any(isinstance(s, AffineStep) for s in steps)
    assert [s.layer.registry_name for s in steps if isinstance(s, LayerStep)] == ["avgpool2d"]
    text = InferenceModel(model).describe(1)
    assert "+batchnorm+prelu" in text and "[" in text


@pytest.mark.skipif(not HAVE_EXT, reason="compiled inference kernels unavailable")
@pytest.mark.parametrize("level", [l for l in isa_mod.LEVELS
                                   if isa_mod.LEVELS.index(l) <= isa_mod.LEVELS.index(isa_mod.cpu())])
def test_every_isa_level_in_process(level):
    model = trained_like(zoo("cnet"))
    x = _x(model, 2)
    ref = model.forward(x, training=False)
    with isa_mod.capped(level):
        assert _ext.isa_active() == isa_mod.LEVELS.index(level)
        for kernel in ("px", "ch"):
            assert rel(InferenceModel(model, kernel=kernel)(x), ref) < 2e-5


@pytest.mark.skipif(not HAVE_EXT, reason="compiled inference kernels unavailable")
@pytest.mark.parametrize("level", ["avx2", "generic"])
def test_portable_paths_in_a_fresh_process(level, tmp_path):
    """DTNN_ISA set before anything loads, as a user on an AVX2-only machine would."""
    if isa_mod.LEVELS.index(level) > isa_mod.LEVELS.index(isa_mod.cpu()):
        pytest.skip(f"this CPU cannot run {level}")
    code = (
        "import json, numpy as np\n"
        "from tests.infer._helpers import trained_like\n"
        "from tests.prune._models import zoo\n"
        "import dtnn._kernels._infer as ext\n"
        "from dtnn.infer import InferenceModel\n"
        "m = trained_like(zoo('simplecnn'))\n"
        "x = np.random.default_rng(0).standard_normal((1,) + tuple(m.input_shape)).astype(np.float32)\n"
        "ref = m.forward(x, training=False).astype(np.float64)\n"
        "errs = [float(np.abs(InferenceModel(m, kernel=k)(x) - ref).max() / np.abs(ref).max())\n"
        "        for k in ('px', 'ch', 'auto')]\n"
        "print(json.dumps({'level': ext.isa_active(), 'errs': errs}))\n")
    env = dict(os.environ, DTNN_ISA=level, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["level"] == isa_mod.LEVELS.index(level)
    assert max(res["errs"]) < 2e-5


def test_batches_copies_refresh_and_errors():
    model = trained_like(zoo("lenet"))
    fast = InferenceModel(model, kernel="heuristic")
    x = _x(model, 7)
    ref = model.predict(x, batch_size=3)
    assert rel(fast.predict(x, batch_size=3), ref) < 2e-5       # batches of 3, 3 and 1
    assert sorted(fast._bound) == [1, 3]
    y1 = fast(x[:1])
    y1_copy = y1.copy()
    fast(x[1:2])
    assert np.array_equal(y1, y1_copy)                           # results are not buffers
    assert fast.predict(x[:0]).shape == (0,) + model.output_shape
    # a snapshot: stale after the weights change, right after refresh()
    model.layers[0].params["weight"][...] *= 2
    assert rel(fast(x[:1]), model.forward(x[:1], training=False)) > 1e-3
    fast.refresh()
    assert rel(fast(x[:1]), model.forward(x[:1], training=False)) < 2e-5
    with pytest.raises(ValueError, match="expected input"):
        fast(np.zeros((1, 3, 28, 28), np.float32))
    with pytest.raises(ValueError, match="kernel must be one of"):
        InferenceModel(model, kernel="fast")
