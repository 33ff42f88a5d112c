"""``dtnn bench model``: calibrate the exchange's cost model here, validate it against
the simulated-cluster measurements, and predict 2..256 nodes at 1/10/100 Gbit/s.

Calibration (this machine, one rank, one thread):

* each zoo model's step (forward + backward + optimizer, batch ``batch``) and the
  moment each layer's gradients are ready (the backward hooks), as fractions of the
  step: ``profile_model``;
* each compressor's encode/decode time per element and payload size on that model's
  tensors: ``measure_codec``;
* the links: alpha (smallest messages) and beta (256 KiB and up) of our ring and of
  MPICH's Iallreduce, from ``dtnn bench collectives`` sweeps on the simulated cluster
  (``fit_links``; 2x2 sweeps apart: ranks sharing a host's link); faster links than
  measured keep the ring's fitted alpha and get beta = 1 / (0.95 rate);
* optionally (``--codec-from``) the codec as the reducer spends it, from a
  ``dtnn bench dist`` run on shared memory (``calibrate_codecs``).

* optionally (``--oversub``) what ranks sharing cores cost the exchange, from
  ``dtnn.bench.oversub`` runs on the simulated cluster (``fit_oversub``; see
  ``costmodel.Oversub``).

Validation: for every dtnn row of a ``dtnn bench scaling`` results file, the model
predicts the step from that cell's measured compute-only step (the exchange-skipped
row: it carries the oversubscription of the simulated hosts; the codec times are
scaled by ranks per core; with ``--oversub`` the cell's ranks per core adds the
transfer's CPU and the waits for peers without a core) and compares it with the
measured step, term by term.  Predictions: at each ``ranks_per_core`` asked for
(1: a real cluster, one rank per core).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from dtnn.bench.costmodel import (Codec, Link, ModelProfile, Oversub, fit_link, predict_step)
from dtnn.bench.model_calib import calibrate_codecs  # noqa: F401  (re-exported)

RATES = {"100mbit": 100e6, "1gbit": 1e9, "10gbit": 10e9, "100gbit": 100e9}
DEFAULT_MODELS = ("simplecnn", "lenet", "vgg11_bn:width=0.5", "vgg16_bn", "cnet")
DEFAULT_SPECS = ("none", "fp16", "int8", "qsgd:bits=4", "terngrad", "sign",
                 "topk:ratio=0.01", "randomk:ratio=0.01", "powersgd:rank=2")


def _build(spec: str, input_shape, classes: int):
    from dtnn.bench.scaling import parse_model
    from dtnn.models import build_model
    name, options = parse_model(spec)
    return build_model(name, tuple(input_shape), classes, seed=0, **options)


def _tuning() -> bool:
    """True while a tuner (the convolutions' BestOf) is still timing alternatives."""
    import dtnn.tune
    return any(row.get("winner") is None for row in dtnn.tune.collect())


def profile_model(spec: str, input_shape=(1, 28, 28), classes: int = 10, batch: int = 32,
                  steps: int = 3, max_warmup: int = 40) -> ModelProfile:
    """Step time and per-layer gradient readiness of one rank (median of ``steps``).

    The timed steps start once the convolution tuner has decided every shape (at most
    ``max_warmup`` steps): with no decision cached on disk (a new machine, or a
    rebooted one) it times its alternatives in the first 10-30 steps, which are not
    the model's step."""
    from dtnn.layers.loss import SoftmaxCrossEntropy
    from dtnn.optim import build_optimizer
    net = _build(spec, input_shape, classes)
    opt = build_optimizer("sgd", net, lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + tuple(input_shape)).astype(np.float32)
    y = rng.integers(0, classes, batch)
    loss = SoftmaxCrossEntropy()

    def step():
        marks: Dict[int, float] = {}

        def hook(layer: int) -> None:
            marks.setdefault(layer, time.perf_counter())
        t0 = time.perf_counter()
        loss.forward(net.forward(x, training=True), y)
        net.backward(loss.backward(), on_grads_ready=hook)
        opt.step()
        return time.perf_counter() - t0, {k: v - t0 for k, v in marks.items()}
    step()
    for _ in range(max_warmup):
        if not _tuning():
            break
        step()
    runs = [step() for _ in range(steps)]
    total, marks = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    ready = []
    for layer in reversed(range(len(net.layers))):
        a, b = net.layer_param_range(layer)
        if b > a:
            ready.append((4.0 * (b - a), min(1.0, marks.get(layer, total) / total)))
    hooks = sorted(min(1.0, t / total) for t in marks.values())
    return ModelProfile(spec, int(net.num_params()), total, ready, hooks)


def measure_codec(spec: str, model_spec: str = "vgg11_bn:width=0.5", input_shape=(1, 28, 28),
                  classes: int = 10, repeats: int = 3) -> Optional[Codec]:
    """Encode/decode seconds per element of ``spec`` on a model's big tensors."""
    if spec == "none":
        return None
    from dtnn.compress import build_compressor
    from dtnn.compress.base import Unit
    net = _build(model_spec, input_shape, classes)
    comp, ef = build_compressor(spec)
    comp.setup(4, 0, 0)
    slots = [s for s in net.slots if s.size >= 1024]
    tensors, off = [], 0
    for s in slots:
        tensors.append((off, tuple(s.shape)))
        off += s.size
    unit = Unit(0, off, tensors)
    x = np.random.default_rng(1).standard_normal(off).astype(np.float32)
    res = np.zeros(off, np.float32) if ef else None
    enc, mid, dec, rounds = [], [], [], 1
    for i in range(repeats):
        unit.step = i
        t = time.perf_counter()
        payload = comp.compress(x, unit, res)
        enc.append(time.perf_counter() - t)
        t = time.perf_counter()
        nxt = comp.next_round(payload, unit) if comp.summable else None
        mid.append(time.perf_counter() - t)
        if nxt is not None:
            rounds, payload = 2, nxt
        out = np.zeros(off, np.float32)
        t = time.perf_counter()
        comp.decompress_add(payload, out, 0.25, unit)
        dec.append(time.perf_counter() - t)
    size = comp.payload_size(unit) * (np.dtype(comp.payload_dtype).itemsize
                                      if comp.summable else 1)
    # between rounds (PowerSGD's orthogonalisation and Q = M^T P) apart from the
    # encode: the rounds term places it after round 1 arrives
    between = float(np.median(mid)) / off if rounds > 1 else 0.0
    first = float(np.median(enc)) / off + (0.0 if rounds > 1 else float(np.median(mid)) / off)
    sparse = bool(getattr(comp, "sparse", False))
    entry, dense = measure_sparse_cpu(off, getattr(comp, "ratio", 0.01), repeats) if sparse \
        else (0.0, 0.0)
    return Codec(first, float(np.median(dec)) / off, size / (4.0 * off),
                 summable=comp.summable, rounds=rounds,
                 sparse_k=getattr(comp, "ratio", None) if sparse else None, between=between,
                 sparse_entry=entry, sparse_pass=dense)


def measure_sparse_cpu(n: int, ratio: float, repeats: int = 3) -> Tuple[float, float]:
    """(seconds per entry, seconds per element of a dense pass) of the work SparCML's
    transport does besides the compressor (``costmodel.sparse_cpu``), timed on
    synthetic data with the transport's own operations: scattering and flagging
    (index, value) entries into a vector with the compiled ``scatter_add``, and the
    dense passes (zeroed float and flag vectors, a nonzero scan, a zero-fill and a
    copy), per element."""
    from dtnn.compress import kernels as K
    rng = np.random.default_rng(2)
    k = max(1, int(ratio * n))
    idx = np.sort(rng.choice(n, k, replace=False)).astype(np.int32)
    val = rng.standard_normal(k).astype(np.float32)
    out = np.zeros(n, np.float32)
    flags = np.zeros(n, bool)
    per_entry, per_pass = [], []
    for _ in range(max(1, repeats) + 1):
        t = time.perf_counter()
        K.scatter_add(idx, val, 1.0, out)
        flags[idx] = True
        per_entry.append((time.perf_counter() - t) / (2.0 * k))
        t = time.perf_counter()
        a = np.zeros(n, np.float32)
        f = np.zeros(n, bool)
        np.flatnonzero(flags)
        a.fill(0.0)
        a[:] = out
        per_pass.append((time.perf_counter() - t) / (5.0 * n))
        del f
    return float(np.median(per_entry[1:])), float(np.median(per_pass[1:]))


def fit_links(*sweeps: Path) -> Dict[str, Link]:
    """alpha, beta per link rate from ``dtnn bench collectives`` JSON lines: our ring
    under ``RATE``, MPICH's own non-blocking allreduce under ``RATE/mpi`` (its
    algorithm over TCP is not the textbook one, so it gets its own fit)."""
    by_rate: Dict[str, List] = {}
    lines = [line for sweep in sweeps for line in sweep.read_text().splitlines() if line.strip()]
    for line in lines:
        rec = json.loads(line)
        label = rec.get("label", "")
        rate = next((r for r in RATES if f" {r} " in f" {label} "), None)
        if rate is None:
            continue
        # several ranks per host (2x2): a flat collective's hops share the host's link,
        # which is not the alpha-beta of one link: fitted apart, as RATE/ALGO@LOCAL
        local = int(rec.get("local_size", 1))
        for row in rec["rows"]:
            key = {"ring": rate, "mpi": f"{rate}/mpi"}.get(row["algorithm"])
            if key and local != 1:
                key = f"{rate}/{row['algorithm']}@{local}"
            if key:
                by_rate.setdefault(key, []).append((rec["ranks"], row["bytes"], row["median"]))
    return {key: fit_link(rows, key, "mpi" if "/mpi" in key else "ring")
            for key, rows in by_rate.items()}


def fit_oversub(*runs: Path) -> Tuple[Oversub, List[Dict[str, Any]]]:
    """The oversubscription terms (``Oversub``) from ``dtnn.bench.oversub`` runs (JSON
    lines, on the simulated cluster: some at one rank per core, some oversubscribed).

    ``cpu_per_byte``: per run, the fixed compute block's slow-down while a ring
    allreduce runs behind it, per byte a rank sends and per rank per core (the machine
    moves every rank's bytes: ``s x cpu_per_byte x sent``); the median of the runs.
    ``wait_per_hop``: a small ring allreduce in a tight loop, per hop;
    ``wait_per_step``: the wait after a compute block that posted three small
    allreduces during it, as the reducer's buckets; ``wait_per_round``: a small
    allreduce after a short codec-like block, beyond the same in a tight loop (the
    ``chain`` phase; zero if the runs predate it).  Both: the median of the
    oversubscribed runs minus the least delayed run at one rank per core (link
    latency and the skew that exist without sharing cores), per extra rank per core;
    zero without runs of both kinds."""
    recs = [json.loads(line) for path in runs for line in path.read_text().splitlines()
            if line.strip()]
    rows = []
    for rec in recs:
        ph = {p["phase"]: p["median"] for p in rec["phases"]}
        s, p = float(rec["oversubscription"]), int(rec["ranks"])
        hops = 2.0 * (p - 1)
        slow = ph["traffic"]["compute"] - ph["compute"]["compute"]
        sent = ph["traffic"]["sent"]
        rows.append({"label": rec.get("label", ""), "ranks": p, "ranks_per_core": s,
                     "load": rec.get("load"), "time": rec.get("time"),
                     "compute_ms": 1e3 * ph["compute"]["compute"],
                     "compute_with_traffic_ms": 1e3 * ph["traffic"]["compute"],
                     "sent_bytes": sent,
                     "cpu_ns_per_byte": 1e9 * slow / (max(1.0, s) * sent) if sent else 0.0,
                     "hop_us": 1e6 * ph["sync_alone"]["wait"] / hops if hops else 0.0,
                     "after_compute_ms": 1e3 * ph["sync"]["wait"],
                     "after_buckets_ms": (1e3 * ph["buckets"]["wait"] if "buckets" in ph
                                          else None),
                     # a blocking round after a short codec-like block, beyond the same
                     # round in a tight loop
                     "chain_round_ms": (1e3 * (ph["chain"]["wait"] - ph["sync_alone"]["wait"])
                                        if "chain" in ph else None)})
    if not rows:
        return Oversub(), rows
    cpu = 1e-9 * float(np.median([r["cpu_ns_per_byte"] for r in rows]))

    def extra(key: str) -> float:
        base = [r[key] for r in rows if r["ranks_per_core"] <= 1.0 and r[key] is not None]
        over = [(r[key] - min(base)) / (r["ranks_per_core"] - 1.0) for r in rows
                if r["ranks_per_core"] > 1.0 and r[key] is not None] if base else []
        return max(0.0, float(np.median(over))) if over else 0.0
    return Oversub(max(0.0, cpu), 1e-6 * extra("hop_us"),
                   1e-3 * extra("after_buckets_ms"), 1e-3 * extra("chain_round_ms")), rows


def link_for(rate: str, fitted: Dict[str, Link], algorithm: str = "ring",
             local: int = 1) -> Link:
    """The fitted link of ``rate`` (``algorithm``'s own fit if there is one, with
    ``local`` ranks per host sharing it); an unmeasured rate gets the nominal bandwidth
    and the smallest fitted alpha."""
    if local != 1 and algorithm != "hier" and f"{rate}/{algorithm}@{local}" in fitted:
        return fitted[f"{rate}/{algorithm}@{local}"]
    if f"{rate}/{algorithm}" in fitted:
        return fitted[f"{rate}/{algorithm}"]
    if rate in fitted:
        return fitted[rate]
    alpha = min((l.alpha for k, l in fitted.items() if "/" not in k), default=50e-6)
    return Link.nominal(RATES[rate], alpha=alpha, name=rate)


def collective_for(spec: str, ranks: int, codec: Optional[Codec]) -> str:
    if codec is None:
        return "ring"
    if codec.summable:
        return "allreduce"
    if ranks <= 2:
        return "allgather"
    return "gtopk" if codec.sparse_k else "qring"


def candidates_for(ranks: int, codec: Optional[Codec]) -> List[str]:
    """The collectives the exchange tuner times for a compressor
    (``collectives.choice.candidate_collectives``), its default first."""
    if codec is None:
        return ["ring", "mpi"]
    if codec.summable:
        return ["allreduce"]
    more = ["gtopk", "sparse"] if codec.sparse_k else ["qring"]
    return list(dict.fromkeys([collective_for("", ranks, codec), "allgather"] + more))


def exchange_for(prof: ModelProfile, spec: str, bucket_mb: float,
                 buckets: Optional[int] = None):
    """The buckets the reducer cuts for compressor ``spec`` (``ModelProfile.exchange``).
    ``buckets``: the count a measured row reports; rows measured before dense payloads
    got smaller buckets (int8, QSGD-8: 2026-12-08) ran with the plain cut, and are
    predicted with it."""
    from dtnn.compress import build_compressor
    ex = prof.exchange(bucket_mb, build_compressor(spec or "none")[0])
    if buckets and len(ex.buckets) != buckets:
        plain = prof.exchange(bucket_mb)
        if len(plain.buckets) == buckets:
            return plain
    return ex


def validate(records: Sequence[Dict[str, Any]], profiles: Dict[str, ModelProfile],
             codecs: Dict[str, Optional[Codec]], links: Dict[str, Link],
             oversub: Optional[Oversub] = None, hops: bool = True) -> List[Dict]:
    """Predicted vs measured step of every dtnn overlap row on a shaped link
    (``oversub``: the terms of the cell's ranks per core, see ``Oversub``; ``hops``:
    the collectives advance at the backward hooks, ``costmodel_rounds``)."""
    # each row against the exchange-skipped step of its own run (one cell, one time
    # stamp): files measured at other times hold other "none" rows for the same cell
    none = {(r["model_spec"], r["hosts"], r["link"], r.get("ranks", r["hosts"]), r.get("time")):
            r["step_seconds"] for r in records
            if r.get("framework") == "dtnn" and r.get("mode") == "none"}
    out = []
    for r in records:
        if r.get("framework") != "dtnn" or r.get("mode") != "overlap":
            continue
        spec = r.get("compress", "none").split("|")[0]
        key = (r["model_spec"], r["hosts"], r["link"], r.get("ranks", r["hosts"]), r.get("time"))
        if key not in none or r["link"] not in links or r["model_spec"] not in profiles \
                or spec not in codecs:
            continue
        prof = profiles[r["model_spec"]]
        compute = none[key]
        # the codec was timed on a free core: with more ranks than cores each rank gets
        # a share of one (not the ratio of the step times: the conv tuner changes those)
        slow = max(1.0, float(r.get("oversubscription") or 1.0))
        codec = codecs[spec]
        if codec is not None:
            codec = replace(codec, encode=codec.encode * slow, decode=codec.decode * slow,
                            between=codec.between * slow,
                            sparse_entry=codec.sparse_entry * slow,
                            sparse_pass=codec.sparse_pass * slow)
        ranks = r.get("ranks", r["hosts"])
        local = ranks // r["hosts"]
        algo = r.get("algorithm") or collective_for(spec, ranks, codec)
        ex = exchange_for(prof, spec, r.get("bucket_mb") or 4.0, r.get("buckets"))
        pred = predict_step(compute, ex, ranks,
                            link_for(r["link"], links, algo, local), algo, codec, local,
                            oversub=oversub, ranks_per_core=slow,
                            progress=prof.progress if hops else None)
        out.append({"model": r["model_spec"], "hosts": r["hosts"], "ranks": ranks,
                    "link": r["link"], "compress": r.get("compress", "none"),
                    "algorithm": algo, "measured": r["step_seconds"],
                    "predicted": pred["step"],
                    "error": pred["step"] / r["step_seconds"] - 1.0,
                    # the terms side by side, to say which one is wrong where it misses
                    "split_measured": {"compute": r.get("compute_seconds"),
                                       "codec": r.get("codec_seconds"),
                                       "exposed": r.get("exposed_comm_seconds")},
                    "split_predicted": {k: pred[k] for k in ("compute", "codec", "exposed")},
                    "ranks_per_core": slow, "oversub": pred.get("oversub", 0.0),
                    "oversub_cpu": pred.get("oversub_cpu", 0.0),
                    # the model has no term for the exchange thread's competition for
                    # the cores: these rows are reported, not counted against the target
                    "modelled": "comm_thread=true" not in r.get("compress", "")})
    return out


def extrapolate(profiles: Dict[str, ModelProfile], codecs: Dict[str, Optional[Codec]],
                links: Dict[str, Link], nodes: Sequence[int] = (2, 4, 8, 16, 32, 64, 128, 256),
                rates: Sequence[str] = ("1gbit", "10gbit", "100gbit"),
                oversub: Optional[Oversub] = None, ranks_per_core: float = 1.0,
                hops: bool = True) -> List[Dict]:
    """Predictions per model, link, node count and compressor.  ``ranks_per_core``
    1 is a real cluster (one rank per core: no waits for peers without a core; the
    transfer's CPU still comes out of the rank's core); 2 is this machine's
    simulated cluster at 4 hosts."""
    rows = []
    for mspec, prof in profiles.items():
        plans = {spec: exchange_for(prof, spec, 4.0) for spec in codecs}
        for rate in rates:
            for n in nodes:
                for spec, codec in codecs.items():
                    ex = plans[spec]
                    # the exchange tuner's choice: the fastest of the collectives it
                    # times (uncompressed: our ring or MPICH's recursive doubling, 2
                    # log2 N latency terms, not 2 (N-1))
                    choices = candidates_for(n, codec)
                    algo, pred = min(((a, predict_step(prof.compute, ex, n,
                                                       link_for(rate, links, a), a, codec,
                                                       oversub=oversub,
                                                       ranks_per_core=ranks_per_core,
                                                       progress=prof.progress if hops
                                                       else None))
                                      for a in choices), key=lambda ap: ap[1]["step"])
                    rows.append({"model": mspec, "link": rate, "nodes": n, "compress": spec,
                                 "collective": algo, "ranks_per_core": ranks_per_core,
                                 **pred})
    return rows


def dump(obj) -> Any:
    if isinstance(obj, (Link, Codec, ModelProfile, Oversub)):
        return dict(obj.__dict__)
    return obj


from dtnn.bench.model_report import plot, report, table  # noqa: E402  (re-exported)

__all__ = ["profile_model", "measure_codec", "fit_links", "validate", "extrapolate", "plot",
           "table", "math"]
