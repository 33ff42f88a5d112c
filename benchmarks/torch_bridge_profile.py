"""Where a ``dtnn.torch`` step's time goes on shared memory, beyond forward/backward.

    mpiexec -n 2 .venv/bin/python benchmarks/torch_bridge_profile.py \\
        --model simplecnn --steps 200 --json /tmp/profile.json

One MPI job, the torch twin of a dtnn zoo model on random data (32 samples per rank,
one thread per rank, as ``torch_bridge_peer.py --bench``), SGD.  It times, step by step
and on every rank:

* ``dtnn.torch.DataParallel`` with ``no_sync`` (no exchange: the compute) and
  uncompressed, alternating in blocks of ``--block`` steps;
* inside the uncompressed step, with ``time.perf_counter_ns`` wrappers around the
  bridge's and the reducer's methods: the parameter hooks, the start of a step
  (``_begin``: control flag, ``start_step``), ``synchronize`` and within it
  ``finish_step``, the wait for the collectives (``_wait``) and the rest of
  ``finish_step`` (posting, 1/size scaling, statistics); every MPI call the exchange
  makes on its communicators is counted by name (collectives per step);
* the ranks' arrival skew at the wait: the spread of ``MPI.Wtime()`` at the wait's
  entry over the ranks (one host, one clock);
* the bare collectives the step could use, each after a barrier: blocking
  ``Allreduce`` and ``Iallreduce`` + dtnn's wait loop of the gradient's size, and the
  same with 4 more bytes.

Medians over the timed steps, the slowest rank (``MAX``) for step times and per rank for
the parts; rank 0 prints one JSON object (and writes it to ``--json``).  Instrumented
steps are a little slower than plain ones: the parts are for attribution; the
overhead target is measured by ``bench_torch_bridge.py`` without instrumentation.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ddp_peer  # noqa: E402

import dtnn.torch as hvd  # noqa: E402
from dtnn._kernels.isa import cpu_model  # noqa: E402


class CountingComm:
    """A communicator proxy that counts (and times) the calls made through it."""

    def __init__(self, comm, counts, times):
        self._comm, self._counts, self._times = comm, counts, times

    def __getattr__(self, name):
        attr = getattr(self._comm, name)
        if not callable(attr) or name.startswith("Get_") or name in ("rank", "size"):
            return attr
        counts, times = self._counts, self._times

        def call(*a, **k):
            t = time.perf_counter_ns()
            try:
                return attr(*a, **k)
            finally:
                times[name] += time.perf_counter_ns() - t
                counts[name] += 1
        return call


def timed(obj, name, acc, key=None):
    """Replace bound method ``obj.name`` by a wrapper adding its ns to ``acc[key]``."""
    fn = getattr(obj, name)
    key = key or name

    def wrapper(*a, **k):
        t = time.perf_counter_ns()
        try:
            return fn(*a, **k)
        finally:
            acc[key] += time.perf_counter_ns() - t
    setattr(obj, name, wrapper)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="simplecnn")
    ap.add_argument("--model-option", action="append", default=[], metavar="K=V",
                    help="zoo model option, e.g. width=0.5 (default: simplecnn's config)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200, help="timed steps per row")
    ap.add_argument("--block", type=int, default=20, help="steps per row before switching")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--option", action="append", default=[], metavar="K=V",
                    help="DataParallel exchange option (e.g. mode=overlap)")
    ap.add_argument("--variants", action="store_true",
                    help="also rows of the no_sync step followed by one collective on "
                         "the gradient buffer, done by hand: blocking Allreduce, "
                         "Iallreduce + dtnn's wait loop, Barrier (what each way of "
                         "waiting costs inside a step)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--cprofile", type=int, default=0, metavar="N",
                    help="after the timed steps, N uncompressed steps under cProfile on "
                         "rank 0: its top functions by own time go to stderr")
    return ap.parse_args(argv)


def build(args):
    from dtnn.models import build_model
    options = {"filters": 32, "hidden": 64} if args.model == "simplecnn" else {}
    for kv in args.model_option:
        k, _, v = kv.partition("=")
        options[k] = float(v) if "." in v else int(v)
    model = build_model(args.model, (1, 28, 28), 10, seed=0, **options)
    return ddp_peer.torch_twin(model), options


def bare_collectives(comm, nbytes, steps):
    from mpi4py import MPI
    from dtnn.parallel.collectives.base import ReqOp, wait
    buf = np.ones(nbytes // 4, np.float32)
    buf4 = np.ones(nbytes // 4 + 1, np.float32)
    out = {}
    cases = {
        "Allreduce": lambda b: comm.Allreduce(MPI.IN_PLACE, b, op=MPI.SUM),
        "Iallreduce+wait": lambda b: wait([ReqOp([comm.Iallreduce(MPI.IN_PLACE, b,
                                                                  op=MPI.SUM)])]),
        "Iallreduce+Wait": lambda b: comm.Iallreduce(MPI.IN_PLACE, b, op=MPI.SUM).Wait(),
    }
    for name, fn in cases.items():
        for label, b in (("", buf), ("+4B", buf4)):
            t_all = []
            for _ in range(steps + 3):
                comm.Barrier()
                t = time.perf_counter_ns()
                fn(b)
                t_all.append(time.perf_counter_ns() - t)
            out[name + label] = float(comm.allreduce(np.median(t_all[3:]), op=MPI.MAX)) / 1e6
    t_small = []
    s = np.ones(1, np.int32)
    for _ in range(steps + 3):
        comm.Barrier()
        t = time.perf_counter_ns()
        comm.Allreduce(MPI.IN_PLACE, s, op=MPI.SUM)
        t_small.append(time.perf_counter_ns() - t)
    out["Allreduce 4B"] = float(comm.allreduce(np.median(t_small[3:]), op=MPI.MAX)) / 1e6
    return out


def main(argv=None):
    args = parse_args(argv)
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    hvd.init(threads=1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    base, options = build(args)
    import copy
    rng = np.random.default_rng(comm.rank)
    x = torch.from_numpy(rng.standard_normal((args.batch, 1, 28, 28)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 10, args.batch).astype(np.int64))
    opts = {}
    for kv in args.option:
        k, _, v = kv.partition("=")
        opts[k] = v
    lossf = torch.nn.CrossEntropyLoss()

    rows = {}
    names = ["nosync", "none"]
    if args.variants:
        names += ["nosync+Allreduce", "nosync+Iallreduce+loop", "nosync+Barrier"]
    for name in names:
        net = copy.deepcopy(base)
        dp = hvd.DataParallel(net, compress="none", **opts)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        rows[name] = (net, dp, opt)

    # instrumentation of the "none" row
    _, dp, _ = rows["none"]
    bridge, reducer = dp._bridge, dp._bridge.reducer
    acc = Counter()
    counts, ctimes = Counter(), Counter()
    bridge.comm = CountingComm(bridge.comm, counts, ctimes)
    for algo in list(getattr(reducer, "_algos", {}).values()):
        algo.comm = CountingComm(algo.comm, counts, ctimes)
    orig_algo = reducer.algo

    def algo_counted(name):
        a = orig_algo(name)
        if not isinstance(a.comm, CountingComm):
            a.comm = CountingComm(a.comm, counts, ctimes)
        return a
    reducer.algo = algo_counted
    timed(bridge, "_grad_ready", acc, "hooks")
    timed(bridge, "_begin", acc, "begin")
    timed(reducer, "start_step", acc, "start_step")
    timed(bridge, "synchronize", acc, "synchronize")
    timed(reducer, "post_remaining", acc, "post_remaining")
    timed(reducer, "finish_step", acc, "finish_step")
    arrivals = []
    orig_wait = reducer._wait

    def wait_logged():
        arrivals.append(MPI.Wtime())
        t = time.perf_counter_ns()
        try:
            return orig_wait()
        finally:
            acc["wait"] += time.perf_counter_ns() - t
    reducer._wait = wait_logged

    from dtnn.parallel.collectives.base import ReqOp, wait as dtnn_wait
    scale = np.float32(1.0 / comm.size)

    def step(name):
        net, dp, opt = rows[name]
        opt.zero_grad(set_to_none=False)
        if name.startswith("nosync"):
            with dp.no_sync():
                lossf(dp(x), y).backward()
            g = dp._bridge.layout.flat_grads
            if name == "nosync+Allreduce":
                comm.Allreduce(MPI.IN_PLACE, g, op=MPI.SUM)
                np.multiply(g, scale, out=g)
            elif name == "nosync+Iallreduce+loop":
                dtnn_wait([ReqOp([comm.Iallreduce(MPI.IN_PLACE, g, op=MPI.SUM)])])
                np.multiply(g, scale, out=g)
            elif name == "nosync+Barrier":
                comm.Barrier()
        else:
            lossf(dp(x), y).backward()
        opt.step()

    for name in rows:
        for _ in range(args.warmup):
            step(name)
    acc.clear(), counts.clear(), ctimes.clear()
    arrivals.clear()
    times = defaultdict(list)
    parts = defaultdict(list)
    comm.Barrier()
    done = 0
    while done < args.steps:
        n = min(args.block, args.steps - done)
        for name in rows:
            step(name)          # untimed switch step
            comm.Barrier()
            if name == "none":
                acc.clear(), counts.clear(), ctimes.clear()
                arrivals.clear()
            for _ in range(n):
                before = dict(acc)
                t = time.perf_counter_ns()
                step(name)
                times[name].append(time.perf_counter_ns() - t)
                if name == "none":
                    for k, v in acc.items():
                        parts[k].append(v - before.get(k, 0))
            if name == "none":
                arr = np.array(arrivals[-n:])
                allarr = comm.allgather(arr)
                if comm.rank == 0:
                    stack = np.stack(allarr)
                    parts["arrival_spread_ns"].extend(
                        ((stack.max(0) - stack.min(0)) * 1e9).tolist())
                    parts["arrival_late_ns"].extend(
                        ((stack.max(0) - stack[0]) * 1e9).tolist())
        done += n
        last = n
    res = {"model": args.model, "model_options": options, "ranks": comm.size,
           "batch_per_rank": args.batch, "steps": args.steps, "block": args.block,
           "exchange_options": opts,
           "mode": reducer.mode, "algorithm": reducer.algorithm,
           "buckets": len(reducer.buckets), "grad_bytes": int(reducer.grads.nbytes),
           "tensors": len(bridge.layout.params)}
    for name, t in times.items():
        med = float(np.median(t))
        res[f"step_ms_{name}"] = float(comm.allreduce(med, op=MPI.MAX)) / 1e6
        res[f"step_ms_{name}_rank"] = [v / 1e6 for v in comm.allgather(med)]
    per_rank = {k: float(np.median(v)) / 1e6 for k, v in parts.items()
                if not k.startswith("arrival")}
    res["parts_ms_median_by_rank"] = {k: [r[k] for r in comm.allgather(per_rank)]
                                      for k in sorted(per_rank)}
    mean_rank = {k: float(np.mean(v)) / 1e6 for k, v in parts.items()
                 if not k.startswith("arrival")}
    res["parts_ms_mean_by_rank"] = {k: [r[k] for r in comm.allgather(mean_rank)]
                                    for k in sorted(mean_rank)}
    if comm.rank == 0:
        res["arrival_spread_ms_median"] = float(np.median(parts["arrival_spread_ns"])) / 1e6
        res["arrival_spread_ms_mean"] = float(np.mean(parts["arrival_spread_ns"])) / 1e6
        res["rank0_waits_for_last_ms_median"] = float(
            np.median(parts["arrival_late_ns"])) / 1e6
    # the counters were cleared at the start of the last block of `last` steps
    res["mpi_calls_per_step"] = {k: v / last for k, v in counts.items()}
    res["mpi_call_us_per_step"] = {k: v / last / 1e3 for k, v in ctimes.items()}
    if args.cprofile:
        import cProfile
        import io
        import pstats
        prof = cProfile.Profile()
        for _ in range(args.cprofile):
            if comm.rank == 0:
                prof.enable()
            step("none")
            if comm.rank == 0:
                prof.disable()
        if comm.rank == 0:
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
            sys.stderr.write(out.getvalue())
    res["bare_ms"] = bare_collectives(comm, int(reducer.grads.nbytes), 50)
    res["cpu"] = cpu_model()
    if comm.rank == 0:
        text = json.dumps(res)
        print(text, flush=True)
        if args.json:
            with open(args.json, "w") as fh:
                fh.write(text + "\n")
    for _, dp, _ in rows.values():
        dp.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
