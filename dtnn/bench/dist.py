"""Data-parallel throughput benchmark: run under ``mpiexec -n N dtnn bench dist``.

Every rank trains a replica on synthetic data (batch ``batch`` per rank) for
``warmup + steps`` steps per reducer mode; the reducer's own timers split a step into
compute / communication / exposed communication (see ``dtnn.parallel.reducer``).  A
raw ``MPI_Allreduce`` of the same number of bytes, timed alone, gives the cost of
the exchange without any framework around it.

Per-step times are reported for the slowest rank (MAX over ranks of the per-rank
median step time), which is what sets the job's pace; samples/s = ranks x batch /
step time.  Every row starts from the same initial weights and optimizer state.

Mode ``none`` runs the same steps with the gradient exchange skipped (replicas drift
apart; only the time matters): the compute-only reference for "communication
efficiency" = samples/s with the exchange / samples/s without it.  Each compressor
spec in ``compress`` gives one row per exchange mode (``none`` = uncompressed); a
spec may carry reducer options for its rows after a ``|``, e.g.
``none|algorithm=mpi`` or ``topk:ratio=0.01|comm_thread=true,collective=allgather``
(``dist`` sets them for every row).  Rows whose exchange tunes itself
(``tune=true``) run their warm-up until the tuner has decided (at most
``tune_steps``), then time the winner; the rows report those tuning steps and their
cost separately (``tune_steps``, ``tune_seconds``, ``tune_extra_seconds``).  With
``none`` among the modes, every exchange row is preceded by exchange-skipped steps of
its own (``reference_step_seconds``, ``efficiency_paired``): a reference measured next
to the row, besides the job's one ``none`` row.
"""
from __future__ import annotations

import platform
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from dtnn._kernels.isa import cpu_model as cpu_name
from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.models import build_model
from dtnn.optim import build_optimizer


def _max(ctx, value: float) -> float:
    if ctx.size == 1:
        return float(value)
    from mpi4py import MPI
    return float(ctx.comm.allreduce(float(value), op=MPI.MAX))


def _gather(ctx, value):
    """``value`` of every rank, in rank order (on every rank)."""
    return [value] if ctx.size == 1 else ctx.comm.allgather(value)


def raw_allreduce_seconds(ctx, nbytes: int, repeats: int = 10) -> Optional[float]:
    """Mean time of one blocking Allreduce(IN_PLACE, SUM) of ``nbytes`` float32 bytes."""
    if ctx.size == 1 or not hasattr(ctx, "comm"):
        return 0.0
    from mpi4py import MPI
    buf = np.ones(max(1, nbytes // 4), np.float32)
    ctx.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)  # warm-up
    ctx.comm.Barrier()
    t = time.perf_counter()
    for _ in range(repeats):
        ctx.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    return _max(ctx, (time.perf_counter() - t) / repeats)


def _timed_steps(ctx, net, opt, loss_fn, x, y, reducer, warmup: int, steps: int,
                 tune_steps: int = 0, tuning: Optional[List[float]] = None):
    """Per-step seconds of the last ``steps`` of ``warmup + steps`` training steps
    (the warm-up goes on while the reducer's tuner decides, at most ``tune_steps``;
    the seconds of those tuning steps are appended to ``tuning``: what the tuner's
    exploration costs, outside the timed window)."""
    tuner = getattr(reducer, "tuner", None)
    if tuner is not None:
        for _ in range(tune_steps):
            if tuner.settled:
                break
            t = time.perf_counter()
            _one_step(net, loss_fn, x, y, reducer, opt)
            if tuning is not None:
                tuning.append(time.perf_counter() - t)
    times = []
    for i in range(warmup + steps):
        if i == warmup:
            if reducer is not None:
                reducer.reset_stats()
            if hasattr(ctx, "comm"):
                ctx.comm.Barrier()
        t = time.perf_counter()
        _one_step(net, loss_fn, x, y, reducer, opt)
        if i == warmup + steps - 1 and reducer is not None:
            reducer.complete_all()   # a deferred last step ends inside the timed window
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def _one_step(net, loss_fn, x, y, reducer, opt) -> None:
    """Forward, loss, backward with the exchange, update.  With ``dist.defer_update``
    the update of each bucket runs in the next forward (``net.forward_hook``)."""
    logits = net.forward(x, training=True)
    loss_fn.forward(logits, y)
    if reducer is None:
        net.backward(loss_fn.backward())
        opt.step()
        return
    reducer.start_step()
    net.backward(loss_fn.backward(), on_grads_ready=reducer.on_grads_ready)
    if reducer.options.defer_update:
        net.forward_hook = reducer.before_group
        reducer.finish_step(defer=True, on_bucket=opt.begin_step())
    elif reducer.options.fuse_update:   # the update decodes the held payloads
        reducer.finish_step(on_bucket=opt.begin_step())
    else:
        reducer.finish_step()
        opt.step()


def split_spec(spec: str) -> tuple:
    """``"topk:ratio=0.01|comm_thread=true"`` -> ("topk:ratio=0.01", {"comm_thread": "true"})."""
    comp, _, rest = spec.partition("|")
    opts: Dict[str, Any] = {}
    for item in filter(None, (t.strip() for t in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            from dtnn.errors import ConfigError
            raise ConfigError(f"--compress {spec!r}: expected SPEC|key=value,..., got {item!r}")
        opts[key.strip()] = value.strip()
    return comp.strip() or "none", opts


def _reducer_row(ctx, reducer, step: float, bucket_mb: float, progress: bool):
    """The reducer's split of the mean step ``step`` (slowest rank), its byte counts."""
    s = reducer.stats()
    row: Dict[str, Any] = {"mean_step_seconds": step, "algorithm": s.get("algorithm"),
                           "comm_thread": s.get("comm_thread"),
                           "deferred_waits": s.get("deferred_waits", {}),
                           "deferred_codec": s.get("deferred_codec", {}),
                           "deferred_finish": s.get("deferred_finish", {}),
                           # every rank's (the split above is the slowest rank's)
                           "deferred_by_rank": _gather(ctx, {
                               k: s.get(k, {}) for k in ("deferred_waits", "deferred_codec",
                                                         "deferred_finish")}),
                           "bucket_mb": s.get("bucket_mb"),
                           "tuning": [{k: t[k] for k in ("tuner", "winner", "stats", "rounds")}
                                      for t in s.get("tuning", [])]}
    for key in ("exposed_comm_seconds", "comm_seconds", "hook_mpi_seconds",
                "backward_seconds", "codec_seconds"):
        row[key] = _max(ctx, s[key])
    # compute = what is left of the step once waiting, MPI calls from the hooks and
    # compression/decompression are taken out
    row["compute_seconds"] = (step - row["exposed_comm_seconds"] - row["hook_mpi_seconds"]
                              - row["codec_seconds"])
    sent = int(s["sent_bytes"]) if s["sent_bytes"] else int(s["payload_bytes"])
    for key in ("wire_sent_bytes", "wire_recv_bytes"):
        row[key] = _max(ctx, s[key])
    row.update(buckets=s["buckets"], progress=progress,
               payload_bytes=s["payload_bytes"], sent_bytes=sent,
               compression_ratio=s["payload_bytes"] / sent if sent else None,
               wire_bytes_estimate=s["wire_bytes_estimate"])
    return row


def run(ctx, model: str = "simplecnn", input_shape: Sequence[int] = (1, 28, 28),
        classes: int = 10, model_options: Optional[Dict[str, Any]] = None, batch: int = 64,
        steps: int = 20, warmup: int = 3, modes: Sequence[str] = ("overlap", "blocking"),
        bucket_mb: float = 4.0, progress: bool = True,
        compress: Sequence[str] = ("none",), dist: Optional[Dict[str, Any]] = None,
        tune_steps: int = 80, paired_reference: bool = True) -> Dict[str, Any]:
    net = build_model(model, tuple(input_shape), classes, seed=0, **(model_options or {}))
    opt = build_optimizer("sgd", net, lr=0.01, momentum=0.9)
    ctx.sync_model(net, opt)
    rng = np.random.default_rng(ctx.rank)
    x = rng.standard_normal((batch,) + tuple(input_shape)).astype(np.float32)
    y = rng.integers(0, classes, batch)
    loss_fn = SoftmaxCrossEntropy()
    results: List[Dict[str, Any]] = []
    runs = [(m, "none") for m in modes if m == "none" or ctx.size == 1]
    runs += [(m, c) for c in compress for m in modes if m != "none" and ctx.size > 1]
    # every row starts from the same weights and optimizer state: a replica trained on
    # one fixed batch changes speed as it trains, which would favour later rows
    start_params = net.flat_params.copy()
    start_buffers = {k: v.copy() for k, v in net.buffers().items()}
    def restart():
        np.copyto(net.flat_params, start_params)
        for k, v in net.buffers().items():
            np.copyto(v, start_buffers[k])
        return build_optimizer("sgd", net, lr=0.01, momentum=0.9)

    # paired reference: with "none" among the modes, every exchange row is preceded by
    # its own exchange-skipped steps, so its efficiency can also be taken against the
    # reference measured next to it (the machine drifts over a job: the one "none" row
    # at the start of the job is tens of seconds away from the last rows)
    paired = paired_reference and ctx.size > 1 and "none" in modes
    for mode, spec in runs:
        reference = None
        if paired and mode != "none":
            opt = restart()
            ref_times = _timed_steps(ctx, net, opt, loss_fn, x, y, None, warmup, steps)
            reference = _max(ctx, float(np.median(ref_times)))
        opt = restart()
        reducer = None
        comp, extra = split_spec(spec)
        if mode != "none":
            reducer = ctx.make_reducer(net, {"mode": mode, "bucket_mb": bucket_mb,
                                             "progress": progress, "compress": comp,
                                             **(dist or {}), **extra})
        tuning: List[float] = []
        step_times = _timed_steps(ctx, net, opt, loss_fn, x, y, reducer, warmup, steps,
                                  tune_steps, tuning)
        if reducer is not None:
            reducer.close()
            net.forward_hook = None
        # median: robust to the odd step another process on the machine steals
        step = _max(ctx, float(np.median(step_times)))
        # the reducer's timers are means: split the mean step, not the median
        mean_step = _max(ctx, float(np.mean(step_times)))
        row: Dict[str, Any] = {"mode": mode if ctx.size > 1 else "serial", "compress": spec,
                               "dist": {**(dist or {}), **extra},
                               "ranks": ctx.size, "batch_per_rank": batch,
                               "global_batch": batch * ctx.size, "steps": steps,
                               "step_seconds": step,
                               "samples_per_second": batch * ctx.size / step}
        if reducer is None:
            row.update(mean_step_seconds=mean_step, compute_seconds=mean_step, comm_seconds=0.0, exposed_comm_seconds=0.0,
                       hook_mpi_seconds=0.0, codec_seconds=0.0, payload_bytes=0,
                       sent_bytes=0, wire_bytes_estimate=0, compression_ratio=None)
        else:
            row.update(_reducer_row(ctx, reducer, mean_step, bucket_mb, progress))
            row["bucket_mb"] = reducer.bucket_mb
            # the tuner's exploration, before the timed window: its steps, their time
            # (slowest rank) and what they cost beyond as many steps of the winner
            tune_seconds = _max(ctx, float(np.sum(tuning)))
            row.update(tune_steps=len(tuning), tune_seconds=tune_seconds,
                       tune_extra_seconds=tune_seconds - len(tuning) * step)
        if reference is not None:
            row.update(reference_step_seconds=reference,
                       efficiency_paired=reference / step)
        results.append(row)
        if ctx.size == 1:
            break  # one serial row is enough
    raw = raw_allreduce_seconds(ctx, net.flat_grads.nbytes)
    for row in results:
        row["raw_allreduce_seconds"] = raw
    return {"model": model, "model_options": model_options or {},
            "input_shape": list(input_shape), "params": net.num_params(),
            "grad_bytes": int(net.flat_grads.nbytes), "ranks": ctx.size,
            "local_size": ctx.local_size, "nodes": getattr(ctx, "num_nodes", 1),
            "host": platform.node(), "cpu": cpu_name(), "results": results}
