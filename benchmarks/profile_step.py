"""Where a training step's time goes, layer by layer, in dtnn (default settings: BestOf,
tuned first) and in its torch twin: each layer's forward and backward timed on its own,
on the inputs the real step gives it, alternating dtnn and torch.

    python benchmarks/profile_step.py --model vgg11_bn:width=0.5 --threads 1 --out /tmp/p.md

The per-layer sums miss what happens between layers (the loss, the optimizer update,
which are timed as their own rows) and the caches' warmth a full step has: use it to
find which layers make a step slow, and ``bench_vs_torch.py`` for the step itself.
"""
from __future__ import annotations

import _isa_env  # noqa: F401  -- first: --isa caps the libraries before they load

import argparse
import os
import sys
import tempfile
import time

import dtnn  # noqa: F401  -- before numpy: it sets OpenBLAS's spin time
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_vs_torch import _activity, _settled, dtnn_stepper, parse_model  # noqa: E402


def _variant(layer) -> str:
    alg = getattr(getattr(layer, "algorithm", None), "_last", None)
    if alg is None:
        return ""
    name = type(alg).__name__
    inner = getattr(alg, "_last", None)        # winograd: the tile size it settled on
    return f"{name}/{type(inner).__name__}" if inner is not None and inner is not alg else name


def _timeit(fn, reps):
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def profile(spec, batch, reps, max_tune_steps):
    import torch
    import dtnn.tune as T
    from dtnn.models import build_model
    from dtnn.export.torch_twin import torch_twin
    name, opts, shape = parse_model(spec)
    T.configure(T.TuneOptions())
    model = build_model(name, shape, 10, seed=0, **opts)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.int64)
    step = dtnn_stepper(model, x, y)
    step()
    n, before = 1, None
    while n < max_tune_steps and not _settled(before):
        before = _activity()
        step()
        n += 1
    net = torch_twin(model)
    net.train()
    # each layer's input and output gradient from one real step
    inputs, h = [], x
    for layer in model.layers:
        inputs.append(h)
        h = layer.forward(h, True)
    grads = [rng.standard_normal(layer.forward(xi, True).shape).astype(np.float32)
             for layer, xi in zip(model.layers, inputs)]
    rows = []
    for i, (layer, mod) in enumerate(zip(model.layers, net)):
        xi, gi = inputs[i], grads[i]
        xt = torch.from_numpy(xi.copy()).requires_grad_(i > 0)
        gt = torch.from_numpy(gi)

        def d_fwd():
            layer.forward(xi, True)

        def d_both():
            layer.forward(xi, True)
            layer.backward(gi)

        def t_fwd():
            mod(xt)

        def t_both():
            out = mod(xt)
            if out.requires_grad:
                out.backward(gt)

        d_fwd(), d_both(), t_fwd(), t_both()
        res = {"dtnn_f": [], "dtnn_fb": [], "torch_f": [], "torch_fb": []}
        for _ in range(reps):                      # alternate: same load on both
            res["dtnn_f"] += _timeit(d_fwd, 1)
            res["torch_f"] += _timeit(t_fwd, 1)
            res["dtnn_fb"] += _timeit(d_both, 1)
            res["torch_fb"] += _timeit(t_both, 1)
        med = {k: float(np.median(v)) * 1e3 for k, v in res.items()}
        rows.append((i, layer.registry_name, "x".join(map(str, xi.shape[1:])), med,
                     _variant(layer)))
    # dtnn in situ: the real step's sequence, each layer's passes timed where they run
    from dtnn.layers.loss import SoftmaxCrossEntropy
    from dtnn.optim import build_optimizer
    lossf, opt = SoftmaxCrossEntropy(), build_optimizer("sgd", model, lr=0.01, momentum=0.9)
    situ = {"f": [[] for _ in model.layers], "b": [[] for _ in model.layers],
            "loss": [], "opt": []}
    for _ in range(reps + 1):
        h = x
        for i, layer in enumerate(model.layers):
            t0 = time.perf_counter()
            h = layer.forward(h, True)
            situ["f"][i].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        lossf.forward(h, y)
        dy = lossf.backward()
        situ["loss"].append(time.perf_counter() - t0)
        for i in reversed(range(len(model.layers))):
            t0 = time.perf_counter()
            dy = model.layers[i].backward(dy)
            situ["b"][i].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        opt.step()
        situ["opt"].append(time.perf_counter() - t0)
    med = lambda v: float(np.median(v[1:])) * 1e3          # noqa: E731
    rows = [r + (med(situ["f"][r[0]]), med(situ["b"][r[0]])) for r in rows]
    extra = {"loss": med(situ["loss"]), "opt": med(situ["opt"])}
    # whole step, for scale
    from bench_vs_torch import torch_stepper
    tstep = torch_stepper(net, x, y)
    tstep(), step()
    whole = {"dtnn": [], "torch": []}
    for _ in range(reps):
        whole["dtnn"] += _timeit(step, 1)
        whole["torch"] += _timeit(tstep, 1)
    whole = {k: float(np.median(v)) * 1e3 for k, v in whole.items()}
    return rows, whole, extra, n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--max-tune-steps", type=int, default=400)
    ap.add_argument("--out", help="append the markdown table here (default: print only)")
    _isa_env.add_argument(ap)
    args = ap.parse_args()
    os.environ["DTNN_TUNE_CACHE"] = tempfile.mkdtemp(prefix="dtnn-profile-tune-")
    from dtnn.threads import set_threads
    set_threads(args.threads)
    rows, whole, extra, tuned = profile(args.model, args.batch, args.reps, args.max_tune_steps)
    lines = [f"Command: `python benchmarks/profile_step.py {' '.join(sys.argv[1:])}` "
             f"({time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}; "
             f"batch {args.batch}, {args.threads} thread(s), median of {args.reps}; "
             f"{tuned} tuning steps first)", "", _isa_env.describe(), "",
             f"Whole step: dtnn {whole['dtnn']:.2f} ms, torch {whole['torch']:.2f} ms "
             f"({whole['dtnn'] / whole['torch']:.2f}x)", "",
             "Isolated: each layer's passes alone, repeated on the same input; in situ: "
             "dtnn's layers timed inside real steps (loss and SGD update as their own rows).",
             "",
             "| # | layer | input | dtnn fwd ms | dtnn bwd ms | torch fwd ms | torch bwd ms "
             "| dtnn/torch fwd+bwd | dtnn in situ fwd ms | in situ bwd ms | dtnn variant |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    tot = np.zeros(6)
    for i, kind, shp, m, var, sf, sb in rows:
        db, tb = m["dtnn_fb"] - m["dtnn_f"], m["torch_fb"] - m["torch_f"]
        tot += [m["dtnn_f"], db, m["torch_f"], tb, sf, sb]
        lines.append(f"| {i} | {kind} | {shp} | {m['dtnn_f']:.2f} | {db:.2f} | "
                     f"{m['torch_f']:.2f} | {tb:.2f} | "
                     f"{m['dtnn_fb'] / max(1e-9, m['torch_fb']):.2f} | {sf:.2f} | {sb:.2f} "
                     f"| {var} |")
    for name, v in extra.items():
        tot[4] += v
        lines.append(f"| | {name} (in situ) | | | | | | | {v:.2f} | | |")
    lines.append(f"| | **sum** | | {tot[0]:.2f} | {tot[1]:.2f} | {tot[2]:.2f} | {tot[3]:.2f} "
                 f"| {(tot[0] + tot[1]) / (tot[2] + tot[3]):.2f} | {tot[4]:.2f} | "
                 f"{tot[5]:.2f} | |")
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "a") as fh:
            fh.write("\n" + text)
    print(text)


if __name__ == "__main__":
    main()
