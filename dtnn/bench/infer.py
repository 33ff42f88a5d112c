"""``dtnn bench infer CHECKPOINT``: inference latency of dtnn vs PyTorch eager vs ONNX
Runtime on the same model and weights, in one run.

Each (engine, thread count) is measured in a fresh child process, so its peak RSS is
its own and one engine's thread pools or allocator state cannot slow another:

* ``dtnn``: the checkpoint's model compiled for inference (``dtnn.infer.InferenceModel``:
  BatchNorm folded into the convolutions, activations fused, one compiled executor; its
  kernel choice per convolution is timed once per batch size before anything is timed);
* ``dtnn-layers``: the same model run layer by layer (``Model.forward``, the path
  training and evaluation use); with ``conv="bestof"`` (default) every convolution is
  switched to BestOf and forward passes run until its inference tuning has settled
  (decisions cached on disk as in training) before anything is timed. torch is never
  imported in the dtnn children (its RSS would count);
* ``torch``: the model's torch twin (``dtnn.export.torch_twin``), eval mode, under
  ``torch.inference_mode()``;
* ``onnxruntime``: the model exported by ``dtnn.export.onnx``, CPU provider,
  ``intra_op_num_threads`` = threads.

Timing: median of ``reps`` calls on a fixed random input of the model's shape (the
values do not change the work of these layers), after ``warmup`` calls; batch 1 and
batch N. Memory: the child's peak RSS, and its growth over the RSS right after the
imports (model + activations + runtime buffers).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

ENGINES = ("dtnn", "dtnn-layers", "torch", "onnxruntime")


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def cpu_description() -> str:
    """Model name, family/model and the best ISA level of this CPU."""
    from dtnn._kernels import isa
    return f"{isa.cpu_model()}, best ISA {isa.cpu()}, {os.cpu_count()} logical CPUs"


def _time(fn, x, reps: int, warmup: int, budget_s: float) -> Dict[str, Any]:
    for _ in range(warmup):
        fn(x)
    times: List[float] = []
    deadline = time.perf_counter() + budget_s
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
        if time.perf_counter() > deadline and len(times) >= 5:
            break
    t = np.array(times) * 1e3
    return {"median_ms": float(np.median(t)), "p10_ms": float(np.percentile(t, 10)),
            "p90_ms": float(np.percentile(t, 90)), "calls": len(times)}


def _dtnn_runner(checkpoint: str, threads: int, conv: str, fused: bool):
    sys.modules.setdefault("torch", None)  # type: ignore[arg-type]  # keep torch out
    from threadpoolctl import threadpool_limits
    import dtnn._kernels  # noqa: F401  -- our OpenMP runtime, so the limit reaches it
    threadpool_limits(limits=threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    from dtnn.io.checkpoint import load_checkpoint
    model = load_checkpoint(checkpoint).model
    if fused:
        from dtnn.infer import InferenceModel
        fast = InferenceModel(model)
        return model, fast
    if conv != "as-saved":
        from dtnn.conv import CONV_ALGORITHMS
        for layer in model.layers:
            if layer.registry_name == "conv2d":
                layer.algorithm = CONV_ALGORITHMS.get(conv)()
    return model, (lambda x: model.forward(x, training=False))


def _torch_runner(checkpoint: str, threads: int):
    import torch
    torch.set_num_threads(threads)
    from dtnn.export.torch_twin import torch_twin
    from dtnn.io.checkpoint import load_checkpoint
    net = torch_twin(load_checkpoint(checkpoint).model).eval()

    def run(x):
        with torch.inference_mode():
            return net(torch.from_numpy(x))
    return run


def _ort_runner(onnx_path: str, threads: int):
    from dtnn.export.onnx import ort_session
    sess = ort_session(onnx_path, threads)
    return lambda x: sess.run(["logits"], {"input": x})


def worker(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Measure one engine at one thread count (runs in a child process)."""
    from dtnn.prune.cost import settle_tuning
    engine, threads = spec["engine"], int(spec["threads"])
    base = _rss_mb()
    settle_calls = 0
    if engine in ("dtnn", "dtnn-layers"):
        model, fn = _dtnn_runner(spec["checkpoint"], threads, spec["conv"],
                                 fused=engine == "dtnn")
    elif engine == "torch":
        fn = _torch_runner(spec["checkpoint"], threads)
    else:
        fn = _ort_runner(spec["onnx"], threads)
    shape = tuple(spec["input_shape"])
    rng = np.random.default_rng(0)
    out: Dict[str, Any] = {"engine": engine, "threads": threads}
    for label, n, reps in (("batch1", 1, spec["reps"]),
                           (f"batch{spec['batch']}", spec["batch"], spec["reps_n"])):
        x = rng.standard_normal((n,) + shape).astype(np.float32)
        if engine == "dtnn-layers":
            settle_calls += settle_tuning(fn, x)
        elif engine == "dtnn":
            fn(x)      # binds the plan to this batch size and times its kernel choices
            out.setdefault("kernels", {})[label] = fn.bound(n).choices
        out[label] = _time(fn, x, reps, spec["warmup"], spec["budget_s"])
    out.update(peak_rss_mb=_peak_mb(), rss_after_imports_mb=base,
               rss_growth_mb=_peak_mb() - base, tuning_calls=settle_calls)
    return out


def bench_infer(checkpoint: str, batch: int = 64, threads: Optional[Sequence[int]] = None,
                engines: Sequence[str] = ENGINES, reps: int = 200, reps_n: int = 20,
                warmup: int = 5, budget_s: float = 20.0, conv: str = "bestof",
                onnx_path: Optional[str] = None) -> Dict[str, Any]:
    """Measure every engine at every thread count (children); returns rows + model facts."""
    from dtnn.io.checkpoint import load_checkpoint
    from dtnn.prune.cost import model_cost
    from dtnn.threads import default_threads

    ckpt = load_checkpoint(checkpoint)
    model = ckpt.model
    threads = list(threads or sorted({1, default_threads()}))
    tmpdir = tempfile.mkdtemp(prefix="dtnn-infer-")
    if "onnxruntime" in engines:
        from dtnn.export.onnx import export_onnx
        onnx_path = onnx_path or os.path.join(tmpdir, "model.onnx")
        export_onnx(model, onnx_path)
    cost = model_cost(model)
    rows = []
    for t in threads:
        for engine in engines:
            spec = {"engine": engine, "threads": t, "checkpoint": os.path.abspath(checkpoint),
                    "onnx": onnx_path, "input_shape": list(model.input_shape), "batch": batch,
                    "reps": reps, "reps_n": reps_n, "warmup": warmup, "budget_s": budget_s,
                    "conv": conv}
            rows.append(_child(spec))
    return {"checkpoint": os.path.abspath(checkpoint), "model": model.name,
            "params": cost["params"], "param_bytes": cost["params"] * 4,
            "flops": cost["flops"], "h5_bytes": os.path.getsize(checkpoint),
            "onnx_bytes": os.path.getsize(onnx_path) if onnx_path else None,
            "batch": batch, "conv": conv, "cpu": cpu_description(), "rows": rows}


def _child(spec: Dict[str, Any]) -> Dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]),
               OPENBLAS_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
    proc = subprocess.run([sys.executable, "-m", "dtnn.bench.infer", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"bench infer: the {spec['engine']} child failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def markdown(result: Dict[str, Any]) -> str:
    b = result["batch"]
    lines = [f"**{result['model']}** ({os.path.basename(result['checkpoint'])}): "
             f"{result['params']:,} parameters ({result['param_bytes'] / 1e6:.2f} MB), "
             f"{result['flops'] / 1e6:.1f} MFLOPs/sample, .h5 {result['h5_bytes'] / 1e6:.2f} MB"
             + (f", .onnx {result['onnx_bytes'] / 1e6:.2f} MB" if result["onnx_bytes"] else "")
             + f"; CPU: {result['cpu']}", "",
             f"| engine | threads | batch-1 median ms (p10-p90) | batch-{b} median ms | "
             f"batch-{b} samples/s | peak RSS MB (growth) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        b1, bn = r["batch1"], r[f"batch{b}"]
        lines.append(f"| {r['engine']} | {r['threads']} | {b1['median_ms']:.3f} "
                     f"({b1['p10_ms']:.3f}-{b1['p90_ms']:.3f}) | {bn['median_ms']:.2f} | "
                     f"{b * 1e3 / bn['median_ms']:.0f} | {r['peak_rss_mb']:.0f} "
                     f"({r['rss_growth_mb']:.0f}) |")
    return "\n".join(lines)


if __name__ == "__main__":   # the child process
    print(json.dumps(worker(json.loads(sys.argv[1]))))
