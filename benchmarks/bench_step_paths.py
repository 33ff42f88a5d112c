"""Training-step time: ``DistributedOptimizer.step`` (what ``dtnn train`` and user loops
run since the API change) against the hand-driven reducer loop the trainer used before
(forward, loss, ``start_step``, backward with the hook, ``finish_step``, optimizer step).

Rounds alternate the two paths on two replicas of the same model and data, so load on
the shared machine hits both alike; the median per-step time of each path is reported
(slowest rank under MPI).  Run alone or under ``mpiexec -n N``::

    python benchmarks/bench_step_paths.py --model simplecnn --rounds 9 --steps 10
    mpiexec -n 2 python benchmarks/bench_step_paths.py --json /tmp/steps.jsonl
"""
import argparse
import json
import time

import dtnn
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="simplecnn")
    ap.add_argument("--width", type=float, default=None)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="append one JSON line here (rank 0)")
    args = ap.parse_args()

    from dtnn.layers.loss import SoftmaxCrossEntropy
    ctx = dtnn.init(threads=args.threads, logging=False)
    opts = {} if args.width is None else {"width": args.width}
    rng = np.random.default_rng(ctx.rank)
    x = rng.standard_normal((args.batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, args.batch)

    # path A: the public optimizer; path B: the reducer driven by hand
    model_a = dtnn.models.build(args.model, (1, 28, 28), 10, **opts)
    opt_a = dtnn.DistributedOptimizer(dtnn.optim.SGD(model_a, lr=0.01, momentum=0.9), ctx=ctx)
    model_b = dtnn.models.build(args.model, (1, 28, 28), 10, **opts)
    sgd_b = dtnn.optim.SGD(model_b, lr=0.01, momentum=0.9)
    reducer = ctx.make_reducer(model_b, {})
    ctx.sync_model(model_b, sgd_b)
    loss_fn = SoftmaxCrossEntropy()

    def step_a():
        opt_a.step(model_a, x, y)

    def step_b():
        loss_fn.forward(model_b.forward(x, training=True), y)
        if reducer is None:
            model_b.backward(loss_fn.backward())
        else:
            reducer.start_step()
            model_b.backward(loss_fn.backward(), on_grads_ready=reducer.on_grads_ready)
            reducer.finish_step()
        sgd_b.step()

    times = {"optimizer": [], "hand": []}
    for r in range(args.rounds + 1):          # round 0 warms up
        for name, fn in (("optimizer", step_a), ("hand", step_b)) if r % 2 else \
                (("hand", step_b), ("optimizer", step_a)):
            ctx.barrier()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            dt = (time.perf_counter() - t0) / args.steps
            worst = float(ctx.allreduce_sum(np.array([dt]))[0]) if ctx.size == 1 else \
                float(ctx.comm.allreduce(dt, op=ctx.MPI.MAX))
            if r:
                times[name].append(worst * 1e3)
    med = {k: float(np.median(v)) for k, v in times.items()}
    row = {"model": args.model, "width": args.width, "batch": args.batch, "ranks": ctx.size,
           "threads": args.threads, "optimizer_ms": med["optimizer"], "hand_ms": med["hand"],
           "ratio": med["optimizer"] / med["hand"], "rounds": args.rounds, "steps": args.steps}
    if ctx.is_root:
        print(f"{args.model} ranks={ctx.size}: DistributedOptimizer.step {med['optimizer']:.2f} "
              f"ms, hand-driven reducer {med['hand']:.2f} ms, ratio {row['ratio']:.3f}")
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
