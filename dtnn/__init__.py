"""dtnn: distributed deep-learning training for CPU clusters (numpy/Cython kernels + MPI).

The public API (everything a training script needs, under one name)::

    import dtnn
    ctx = dtnn.init()                                  # serial or MPI, decided by the launcher
    train, test = dtnn.data.load("fashion-mnist")
    model = dtnn.models.build("vgg11_bn", train.sample_shape, train.num_classes, width=0.5)
    opt = dtnn.DistributedOptimizer(dtnn.optim.SGD(model, lr=0.05, momentum=0.9),
                                    compress="powersgd:rank=2")
    for x, y in dtnn.data.loader(train, batch_size=64, ctx=ctx).epoch(0):
        loss = opt.step(model, x, y)

``init``, ``DistributedOptimizer``, ``Sequential``, ``evaluate``, ``save``/``load``,
``train`` (what ``dtnn train`` runs) and ``load_config`` are here; the subpackages
``models``, ``layers``, ``optim``, ``data``, ``parallel``, ``compress``, ``tune`` hold
the rest.  Names load on first use, so ``import dtnn`` stays cheap.
"""

__version__ = "0.1.0"

import os as _os

# OpenMP threads that spin while waiting steal the core from the other MPI ranks on a
# shared host (measured: a 10x slow-down with 2 ranks on 2 cores), so under an MPI
# launcher they sleep (PASSIVE).  Must be set before the OpenMP runtime loads, hence
# here; an explicit user setting (OMP_WAIT_POLICY or GOMP_SPINCOUNT) wins.
# OpenBLAS reads its spin time when it loads (default 2^28 cycles, ~70 ms): after a
# multi-threaded GEMM its workers then busy-wait and halve the speed of the next torch
# or OpenMP call (measured: torch's conv 44.6 ms instead of 27.2 ms at 2 threads).
# If numpy (hence OpenBLAS) was imported before dtnn, this setting comes too late;
# dtnn.threads warns about it when more than one thread is asked for.
import sys as _sys
OPENBLAS_TIMEOUT_TOO_LATE = ("numpy" in _sys.modules
                             and "OPENBLAS_THREAD_TIMEOUT" not in _os.environ)
# One process alone on its cores (no launcher says there are several ranks): a short
# bounded spin instead.  With PASSIVE every parallel region wakes its threads with a
# futex; a training step runs ~100 regions (BatchNorm, ReLU, pooling, the fused
# convolutions), and vgg11_bn w0.5 at 2 threads lost ~6 ms of ~60 to the wake-ups
# (4 ms/step of system time).  A long spin used to make idle OpenMP threads spin
# through the OpenBLAS GEMMs that follow (libgomp's default, 300000, doubled that
# step); since dtnn.threads runs the BLAS at one thread and dtnn's GEMMs on the OpenMP
# threads themselves ("one pool", dtnn/gemm.py), nothing else needs the core, and
# 200000 spins keep the workers awake across the Python between layers (20000 let
# them fall asleep: lenet at 2 threads ran in bimodal rounds of 3.2 and 5-8 ms;
# benchmarks/results/vs_torch_default.md, sections D and E).
_RANKS_ENV = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS",
              "PMIX_SIZE")
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    if any(_os.environ.get(v, "1").strip() not in ("", "1") for v in _RANKS_ENV):
        _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        _os.environ["GOMP_SPINCOUNT"] = "200000"
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "1")

# Large numpy/torch buffers come and go every training step; see dtnn/malloc.py.
from dtnn.malloc import tune_malloc as _tune_malloc  # noqa: E402

_tune_malloc()


#: public name -> (module, attribute); imported on first access (PEP 562)
_EXPORTS = {
    "init": ("dtnn.api", "init"),
    "save": ("dtnn.api", "save"),
    "load": ("dtnn.api", "load"),
    "Context": ("dtnn.parallel.context", "Context"),
    "DistributedOptimizer": ("dtnn.parallel.optimizer", "DistributedOptimizer"),
    "get_context": ("dtnn.parallel", "get_context"),
    "Sequential": ("dtnn.models.sequential", "Sequential"),
    "Model": ("dtnn.models.model", "Model"),
    "evaluate": ("dtnn.engine.evaluate", "evaluate"),
    "Evaluation": ("dtnn.engine.evaluate", "Evaluation"),
    "evaluate_checkpoint": ("dtnn.engine.evaluate", "evaluate_checkpoint"),
    "InferenceModel": ("dtnn.infer", "InferenceModel"),
    "train": ("dtnn.engine.session", "train"),
    "Config": ("dtnn.config", "Config"),
    "load_config": ("dtnn.config", "load_config"),
    "UserError": ("dtnn.errors", "UserError"),
}
_SUBPACKAGES = ("api", "models", "layers", "optim", "data", "parallel", "compress", "tune",
                "engine", "io", "metrics", "conv", "config", "errors", "infer")

__all__ = sorted(_EXPORTS) + ["models", "layers", "optim", "data", "parallel", "compress",
                              "tune", "infer", "__version__"]


def __getattr__(name):
    import importlib
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"dtnn.{name}")
    raise AttributeError(f"module 'dtnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBPACKAGES))
