"""Time one training step (forward, loss, backward, SGD+momentum update) in dtnn and in
PyTorch eager for the same architecture, weights, batch and thread count, with dtnn's
default settings (BestOf convolutions, tuned online from an empty cache), and charge
the tuning to one epoch.

    python benchmarks/bench_vs_torch.py --threads 1 --out /tmp/vs_torch_t1.md \\
        --models simplecnn lenet vgg11_bn:width=0.5 vgg16_bn cnet
    python benchmarks/bench_vs_torch.py --threads 2 --isa avx2 ...   # the AVX2 paths

Per model: (1) tuning: training steps from an empty tuning cache until every BestOf
choice has settled, each step timed; (2) steady state: rounds that alternate dtnn and
torch (``--rounds`` x ``--steps``), median step time of each.  The tuning cost is the
tuning steps' time beyond the same number of steady dtnn steps; "amortised" adds it,
spread over one epoch (``--epoch-samples`` / batch steps, default Fashion-MNIST's
60000), to the steady step time.  ``--conv NAME`` pins a variant instead.
"""
from __future__ import annotations

import _isa_env  # noqa: F401  -- first: --isa caps the libraries before they load

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter

#: the environment before dtnn sets its defaults: torch's own process gets this one
ENV_BEFORE_DTNN = dict(os.environ)

import dtnn  # noqa: F401,E402  -- before numpy: it sets OpenBLAS's spin time
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def dtnn_stepper(model, x, y, lr=0.01):
    from dtnn.layers.loss import SoftmaxCrossEntropy
    from dtnn.optim import build_optimizer
    loss = SoftmaxCrossEntropy()
    opt = build_optimizer("sgd", model, lr=lr, momentum=0.9)

    def step():
        out = model.forward(x, training=True)
        value = loss.forward(out, y)
        model.backward(loss.backward())
        opt.step()
        return value
    return step


def torch_stepper(net, x, y, lr=0.01):
    import torch
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    lossf = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=False)
        value = lossf(net(xt), yt)
        value.backward()
        opt.step()
        return value.item()
    return step


def parse_model(spec):
    """'vgg11_bn:width=0.5' -> ('vgg11_bn', {'width': 0.5}, (1, 28, 28));
    'vgg16_bn:input=3x32x32' -> ('vgg16_bn', {}, (3, 32, 32))"""
    name, _, rest = spec.partition(":")
    opts, shape = {}, (1, 28, 28)
    for kv in filter(None, rest.split(",")):
        k, v = kv.split("=")
        if k == "input":
            shape = tuple(int(d) for d in v.split("x"))
        else:
            opts[k] = float(v) if "." in v else int(v)
    return name, opts, shape


def check_twin(name, opts, shape, net, x):
    """The twin computes the same function: an untuned im2col copy of the model (same
    seed, so same weights) against the twin in inference mode (no dropout masks, which
    differ between the libraries in training mode).  A separate copy, so this check
    tunes nothing and the tuning measured below starts from nothing."""
    import torch
    from dtnn.models import build_model
    ref = build_model(name, shape, 10, seed=0, **{**opts, "conv_algorithm": "im2col"})
    ours = ref.forward(x, training=False)
    net.eval()
    with torch.no_grad():
        theirs = net(torch.from_numpy(x)).numpy()
    net.train()
    err = float(np.abs(ours - theirs).max() / max(1e-6, np.abs(theirs).max()))
    assert err < 1e-3, f"{name}: dtnn and its torch twin disagree (rel. error {err:.2e})"


def _activity():
    """Per unsettled tuning key, how many calls it has seen (to tell live keys from the
    ones only the accuracy screen's small slices created, which are never called again)."""
    import dtnn.tune as T
    return {(name, st.key): st.timed_calls + st.discarded
            + sum(len(v) for v in st.warm.values())
            for name, bo in T.tuners().items() for st in bo._states.values()
            if not st.settled}


def _settled(before=None):
    """True when no tuning key that the last step called is still unsettled."""
    now = _activity()
    if before is None:
        return not now
    return all(before.get(k) == v for k, v in now.items())


def _picks():
    import dtnn.tune as T
    conv = T.tuners().get("conv")
    if conv is None:
        return ""
    count = Counter()
    for st in conv._states.values():
        count[st.winner or "unsettled"] += len(st.labels) or 1
    return ", ".join(f"{n} {c}" for n, c in count.most_common())


class TorchProcess:
    """torch's steps timed in a process of its own (benchmarks/_torch_worker.py), with
    the environment the benchmark had before dtnn set its defaults: torch with its own
    OpenMP settings, as a torch user has them.  Called like a step function that runs
    ``n`` steps and returns their total time."""

    def __init__(self, spec, batch, threads):
        here = os.path.dirname(os.path.abspath(__file__))
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(here, "_torch_worker.py"), spec, str(batch),
             str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=ENV_BEFORE_DTNN)
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"torch worker did not start ({line!r})")

    def run(self, n):
        self.proc.stdin.write(f"run {n}\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline()) * n

    def close(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait(timeout=60)


#: between rounds: idle OpenMP threads of the side that just ran may still spin (torch's
#: default spin lasts milliseconds); let them sleep before the other side is timed
ROUND_GAP_S = float(os.environ.get("BENCH_ROUND_GAP_S", "0.1"))


def bench_model(spec, batch, rounds, steps, conv, max_tune_steps, threads=1,
                torch_process=False):
    import dtnn.tune as T
    from dtnn.models import build_model
    from torch_twin import torch_twin
    name, opts, shape = parse_model(spec)
    if conv:
        opts["conv_algorithm"] = conv
    T.configure(T.TuneOptions())               # the defaults, empty cache (see main)
    model = build_model(name, shape, 10, seed=0, **opts)
    net = torch_twin(model)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.int64)
    check_twin(name, {k: v for k, v in opts.items() if k != "conv_algorithm"}, shape, net, x)
    ours, theirs = dtnn_stepper(model, x, y), torch_stepper(net, x, y)
    tune_times = []
    t0 = time.perf_counter()
    ours()
    tune_times.append(time.perf_counter() - t0)
    before = None
    while not _settled(before) and len(tune_times) < max_tune_steps:
        before = _activity()
        t0 = time.perf_counter()
        ours()
        tune_times.append(time.perf_counter() - t0)
    theirs()

    def in_process(fn):
        def run(n):
            start = time.perf_counter()
            for _ in range(n):
                fn()
            return time.perf_counter() - start
        return run

    worker = TorchProcess(spec, batch, threads) if torch_process else None
    run_torch = worker.run if worker is not None else in_process(theirs)
    times = {"dtnn": [], "torch": []}
    try:
        for _ in range(rounds):
            for label, run in (("dtnn", in_process(ours)), ("torch", run_torch)):
                time.sleep(ROUND_GAP_S)
                times[label].append(run(steps) / steps)
    finally:
        if worker is not None:
            worker.close()
    print(f"{spec}: per round ms: dtnn " + " ".join(f"{t * 1e3:.1f}" for t in times["dtnn"])
          + " | torch " + " ".join(f"{t * 1e3:.1f}" for t in times["torch"]),
          file=sys.stderr, flush=True)
    res = {k: float(np.median(v)) for k, v in times.items()}
    ratios = np.array(times["dtnn"]) / np.array(times["torch"])   # per round: same load
    res["spread"] = (float(ratios.min()), float(ratios.max()))
    res["tune_steps"] = len(tune_times)
    res["tune_cost"] = max(0.0, sum(tune_times) - len(tune_times) * res["dtnn"])
    res["report_cost"] = sum(r.get("tuning_cost_seconds") or 0.0 for r in T.collect())
    res["settled"] = _settled(before)
    res["picks"] = _picks()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+",
                    default=["simplecnn", "lenet", "vgg11_bn:width=0.5", "vgg16_bn", "cnet"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--conv", default="", help="pin this conv variant (default: the "
                    "model default, bestof)")
    ap.add_argument("--epoch-samples", type=int, default=60000)
    ap.add_argument("--max-tune-steps", type=int, default=400)
    ap.add_argument("--torch-process", action="store_true",
                    help="time torch in a process of its own, with the environment "
                    "before dtnn's defaults (default: in this process, where torch "
                    "shares dtnn's OpenMP runtime and its bounded spin; measured "
                    "noisier: rounds after the first ran up to 2x slower on both sides, "
                    "vs_torch_default.md D)")
    ap.add_argument("--out", help="append a markdown table here (default: print only)")
    _isa_env.add_argument(ap)
    args = ap.parse_args()
    os.environ["DTNN_TUNE_CACHE"] = tempfile.mkdtemp(prefix="dtnn-vs-torch-tune-")
    from dtnn.threads import set_threads
    set_threads(args.threads)
    epoch_steps = -(-args.epoch_samples // args.batch)   # 60000 / 64 -> 938
    rows = []
    for spec in args.models:
        t = bench_model(spec, args.batch, args.rounds, args.steps, args.conv,
                        args.max_tune_steps, args.threads, args.torch_process)
        amort = t["dtnn"] + t["tune_cost"] / epoch_steps
        rows.append(f"| {spec} | {args.threads} | {t['dtnn'] * 1e3:.2f} | "
                    f"{t['tune_cost']:.2f} ({t['tune_steps']} steps"
                    f"{'' if t['settled'] else ', unsettled'}) | {amort * 1e3:.2f} | "
                    f"{t['torch'] * 1e3:.2f} | {t['dtnn'] / t['torch']:.2f} "
                    f"({t['spread'][0]:.2f}-{t['spread'][1]:.2f}) | "
                    f"**{amort / t['torch']:.2f}** | {t['picks']} |")
        print(rows[-1], flush=True)
    head = [f"Command: `python benchmarks/bench_vs_torch.py {' '.join(sys.argv[1:])}` "
            f"({time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}; "
            f"batch {args.batch}, median of {args.rounds} rounds x {args.steps} steps, "
            f"tuning charged to an epoch of {epoch_steps} steps)", "",
            _isa_env.describe(), "",
            "torch timed " + ("in this process, with dtnn's OpenMP settings"
                              if not args.torch_process else
                              "in a process of its own, with its own defaults "
                              "(the environment before dtnn's)") + ".", "",
            "| model | threads | dtnn ms/step (tuned) | tuning cost s | dtnn amortised ms | "
            "torch ms/step | dtnn/torch tuned (per-round range) | dtnn/torch amortised | "
            "conv picks |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    text = "\n".join(head + rows) + "\n"
    if args.out:
        with open(args.out, "a") as fh:
            fh.write("\n" + text)
    print(text)


if __name__ == "__main__":
    main()
