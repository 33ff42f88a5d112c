"""Timeline of a multi-round compressed exchange (PowerSGD) inside the training step.

Run under ``mpiexec`` (on the simulated cluster for the cost model's rows)::

    launch/simcluster.sh run -- -n 4 .venv/bin/python -m dtnn.bench.model_rounds \\
        --model vgg11_bn:width=0.5 --compress powersgd:rank=2 --json OUT.jsonl

It trains the same synthetic step as ``dtnn bench dist`` and records, on every rank
and for every timed step, when each thing happened (seconds from the step's start):

* ``hooks``: each backward hook (where the reducer posts buckets and advances the
  operations in flight), ``backward_end``, ``step_end`` (``finish_step`` returned);
* per bucket: ``encode`` (round 1's payload: P = M Q), then for each round its start,
  the moment it was *seen* complete (by the hook or wait that progressed it), the
  codec between rounds (``next_round``: orthogonalise P, Q = M^T P, the residual)
  and the final decode;
* per ring operation, the moment each hop was seen complete.

Nothing in ``dtnn.parallel`` changes: the profile wraps the exchange's methods on
this process only (``instrument``).  ``summarise`` turns the records into the
split the cost model needs: how much of each round was still in flight when
backward ended, the codec and latency chain after it (``dtnn.bench.costmodel``'s
rounds term is derived from the protocol; this only checks it).
"""
from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

import numpy as np


class Recorder:
    """Timestamps of one step, relative to ``t0`` (set at the step's start)."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.events: List[tuple] = []

    def begin(self) -> None:
        self.t0 = time.perf_counter()
        self.events = []

    def mark(self, *what) -> None:
        self.events.append((time.perf_counter() - self.t0,) + what)


def instrument(rec: Recorder):
    """Wrap the exchange's classes so that they report to ``rec``; returns an undo."""
    from dtnn.parallel.collectives import cx_allreduce, ring
    from dtnn.parallel import exchange as X
    saved = []

    def wrap(cls, name, make):
        orig = getattr(cls, name)
        saved.append((cls, name, orig))
        setattr(cls, name, make(orig))

    def op_next(orig):
        def _next(self):
            k, r = self.plan.unit.index, self.round
            rec.mark("seen" if r else "post", k, r)
            out = orig(self)
            rec.mark("started" if out is not None else "done", k, self.round)
            return out
        return _next

    def encode(orig):
        def _encode(self, plan):
            rec.mark("encode0", plan.unit.index, 0)
            out = orig(self, plan)
            rec.mark("encode1", plan.unit.index, 0)
            return out
        return _encode

    def ring_advance(orig):
        def _advance(self):
            rec.mark("hop", id(self), self.step)
            return orig(self)
        return _advance

    wrap(cx_allreduce._SummableOp, "_next", op_next)
    wrap(X.CompressedExchange, "encode", encode)
    wrap(ring.RingOp, "_advance", ring_advance)

    def undo():
        for cls, name, orig in reversed(saved):
            setattr(cls, name, orig)
    return undo


def bucket_timeline(events: List[tuple]) -> Dict[int, Dict[str, Any]]:
    """Per bucket: encode start/end, per round its start and seen-complete times, the
    codec between rounds (``between``: seen -> next round started) and the decode
    (``decode``: last round seen -> done)."""
    out: Dict[int, Dict[str, Any]] = {}
    for t, kind, k, r in (e for e in events if e[1] != "hop" and e[1] != "hook"
                          and len(e) == 4):
        b = out.setdefault(k, {"start": {}, "seen": {}})
        if kind == "encode0":
            b["encode0"] = t
        elif kind == "encode1":
            b["encode1"] = t
        elif kind == "started":
            b["start"][r] = t
        elif kind == "seen":
            b["seen"][r] = t
        elif kind == "done":
            b["done"] = t
    for b in out.values():
        rounds = sorted(b["seen"])
        b["rounds"] = len(rounds)
        b["between"] = [b["start"][r + 1] - b["seen"][r] for r in rounds
                        if r + 1 in b["start"]]
        if rounds and "done" in b:
            b["decode"] = b["done"] - b["seen"][rounds[-1]]
    return out


def summarise(steps: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Medians over steps (of one rank) of the quantities the rounds term predicts.

    ``after_backward`` = step_end - backward_end (the exposed exchange), split into
    ``codec_after`` (between-rounds codec and decodes that ran after backward ended),
    and the rest (``wait_after``: rounds in flight, waits for peers).  ``rounds_open``:
    rounds not yet complete (seen) when backward ended; ``hops_after``: ring hops seen
    after backward."""
    rows = []
    for s in steps:
        bend = s["backward_end"]
        tl = bucket_timeline(s["events"])
        codec_after = 0.0
        rounds_open = 0
        for b in tl.values():
            for r in sorted(b["seen"]):
                if b["seen"][r] > bend:
                    rounds_open += 1
                nxt = b["start"].get(r + 1)
                if nxt is not None:
                    codec_after += max(0.0, nxt - max(bend, b["seen"][r]))
            if "decode" in b and b["done"] > bend:
                codec_after += b["done"] - max(bend, b["done"] - b["decode"])
        hops_after = sum(1 for e in s["events"] if e[1] == "hop" and e[0] > bend)
        after = s["step_end"] - bend
        rows.append({"step": s["step_end"], "backward_end": bend, "after_backward": after,
                     "codec_after": codec_after, "wait_after": after - codec_after,
                     "rounds_open": rounds_open, "hops_after": hops_after,
                     "between": sum(sum(b["between"]) for b in tl.values()),
                     "buckets": len(tl)})
    return {k: float(np.median([r[k] for r in rows])) for k in rows[0]} if rows else {}


def run(ctx, model: str, compress: str, batch: int = 32, steps: int = 10, warmup: int = 3,
        bucket_mb: float = 4.0, dist: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    from dtnn.bench.dist import split_spec
    from dtnn.bench.scaling import parse_model
    from dtnn.layers.loss import SoftmaxCrossEntropy
    from dtnn.models import build_model
    from dtnn.optim import build_optimizer
    name, options = parse_model(model)
    net = build_model(name, (1, 28, 28), 10, seed=0, **options)
    opt = build_optimizer("sgd", net, lr=0.01, momentum=0.9)
    ctx.sync_model(net, opt)
    rng = np.random.default_rng(ctx.rank)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    loss = SoftmaxCrossEntropy()
    comp, extra = split_spec(compress)
    reducer = ctx.make_reducer(net, {"mode": "overlap", "bucket_mb": bucket_mb,
                                     "compress": comp, **(dist or {}), **extra})
    rec = Recorder()
    undo = instrument(rec)

    def hook(layer):
        rec.mark("hook", layer)
        reducer.on_grads_ready(layer)
    records = []
    try:
        for i in range(warmup + steps):
            if i == warmup:
                ctx.barrier()
            rec.begin()
            loss.forward(net.forward(x, training=True), y)
            reducer.start_step()
            rec.mark("backward_start")
            net.backward(loss.backward(), on_grads_ready=hook)
            bend = time.perf_counter() - rec.t0
            reducer.finish_step()
            end = time.perf_counter() - rec.t0
            opt.step()
            if i >= warmup:
                records.append({"backward_end": bend, "step_end": end,
                                "events": list(rec.events)})
    finally:
        undo()
        reducer.close()
    mine = {"rank": ctx.rank, "summary": summarise(records), "steps": records}
    every = ctx.comm.gather(mine, root=0) if hasattr(ctx, "comm") else [mine]
    return {"model": model, "compress": compress, "batch": batch, "ranks": ctx.size,
            "bucket_mb": bucket_mb, "ranks_data": every}


def main(argv=None) -> int:
    import argparse
    import os
    ap = argparse.ArgumentParser(prog="python -m dtnn.bench.model_rounds",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="vgg11_bn:width=0.5")
    ap.add_argument("--compress", default="powersgd:rank=2")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--bucket-mb", type=float, default=4.0)
    ap.add_argument("--json", default="", help="append the result as one JSON line here")
    ap.add_argument("--label", default="")
    args = ap.parse_args(argv)
    from dtnn.parallel import get_context
    from dtnn.threads import set_threads
    set_threads(1)
    ctx = get_context()
    res = run(ctx, args.model, args.compress, args.batch, args.steps, args.warmup,
              args.bucket_mb)
    if ctx.rank == 0:
        res.update(label=args.label, time=time.strftime("%Y-%m-%d %H:%M:%S"),
                   load=list(os.getloadavg()))
        for r in res["ranks_data"]:
            print(r["rank"], {k: round(1e3 * v, 2) if k not in ("rounds_open", "hops_after",
                                                                 "buckets") else v
                              for k, v in r["summary"].items()}, flush=True)
        if args.json:
            from dtnn.io.jsonl import JsonlWriter   # h5py behind it: only when asked
            with JsonlWriter(args.json) as log:
                log.write(res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
