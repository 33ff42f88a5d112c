"""``dtnn bench model``: calibrate the exchange's cost model here, validate it against
the simulated-cluster measurements, and predict 2..256 nodes at 1/10/100 Gbit/s.

Calibration (this machine, one rank, one thread):

* each zoo model's step (forward + backward + optimizer, batch ``batch``) and the
  moment each layer's gradients are ready (the backward hooks), as fractions of the
  step: ``profile_model``;
* each compressor's encode/decode time per element and payload size on that model's
  tensors: ``measure_codec``;
* the links: alpha and beta fitted to the ring rows of ``dtnn bench collectives``
  sweeps on the simulated cluster (``fit_links``); faster links than measured keep
  the fitted alpha and get beta = 1 / (0.95 rate).

Validation: for every dtnn row of a ``dtnn bench scaling`` results file, the model
predicts the step from that cell's measured compute-only step (the exchange-skipped
row: it carries the oversubscription of the simulated hosts, by which the codec
times are scaled too) and compares it with the measured step.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from dtnn.bench.costmodel import (Codec, Link, ModelProfile, fit_link, predict_step)

RATES = {"100mbit": 100e6, "1gbit": 1e9, "10gbit": 10e9, "100gbit": 100e9}
DEFAULT_MODELS = ("simplecnn", "lenet", "vgg11_bn:width=0.5", "vgg16_bn", "cnet")
DEFAULT_SPECS = ("none", "fp16", "int8", "qsgd:bits=4", "terngrad", "sign",
                 "topk:ratio=0.01", "randomk:ratio=0.01", "powersgd:rank=2")


def _build(spec: str, input_shape, classes: int):
    from dtnn.bench.scaling import parse_model
    from dtnn.models import build_model
    name, options = parse_model(spec)
    return build_model(name, tuple(input_shape), classes, seed=0, **options)


def profile_model(spec: str, input_shape=(1, 28, 28), classes: int = 10, batch: int = 32,
                  steps: int = 3) -> ModelProfile:
    """Step time and per-layer gradient readiness of one rank (median of ``steps``)."""
    from dtnn.layers.loss import SoftmaxCrossEntropy
    from dtnn.optim import build_optimizer
    net = _build(spec, input_shape, classes)
    opt = build_optimizer("sgd", net, lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + tuple(input_shape)).astype(np.float32)
    y = rng.integers(0, classes, batch)
    loss = SoftmaxCrossEntropy()
    runs = []
    for i in range(steps + 1):
        marks: Dict[int, float] = {}
        t0 = time.perf_counter()
        loss.forward(net.forward(x, training=True), y)
        net.backward(loss.backward(),
                     on_grads_ready=lambda layer: marks.setdefault(layer, time.perf_counter()))
        opt.step()
        total = time.perf_counter() - t0
        if i:
            runs.append((total, {k: v - t0 for k, v in marks.items()}))
    total, marks = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    ready = []
    for layer in reversed(range(len(net.layers))):
        a, b = net.layer_param_range(layer)
        if b > a:
            ready.append((4.0 * (b - a), min(1.0, marks.get(layer, total) / total)))
    return ModelProfile(spec, int(net.num_params()), total, ready)


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
    enc, dec, rounds = [], [], 1
    for i in range(repeats):
        unit.step = i
        t = time.perf_counter()
        payload = comp.compress(x, unit, res)
        nxt = comp.next_round(payload, unit) if comp.summable else None
        enc.append(time.perf_counter() - t)
        if nxt is not None:
            rounds, payload = 2, nxt
        out = np.zeros(off, np.float32)
        t = time.perf_counter()
        comp.decompress_add(payload, out, 0.25, unit)
        dec.append(time.perf_counter() - t)
    size = comp.payload_size(unit) * (np.dtype(comp.payload_dtype).itemsize
                                      if comp.summable else 1)
    return Codec(float(np.median(enc)) / off, float(np.median(dec)) / off, size / (4.0 * off),
                 summable=comp.summable, rounds=rounds,
                 sparse_k=getattr(comp, "ratio", None) if getattr(comp, "sparse", False)
                 else None)


def fit_links(sweep: Path) -> Dict[str, Link]:
    """alpha, beta per link rate from ``dtnn bench collectives`` JSON lines (own ring)."""
    by_rate: Dict[str, List] = {}
    for line in sweep.read_text().splitlines():
        rec = json.loads(line)
        label = rec.get("label", "")
        rate = next((r for r in RATES if f" {r} " in f" {label} "), None)
        if rate is None:
            continue
        for row in rec["rows"]:
            if row["algorithm"] == "ring":
                by_rate.setdefault(rate, []).append((rec["ranks"], row["bytes"], row["median"]))
    return {rate: fit_link(rows, rate) for rate, rows in by_rate.items()}


def link_for(rate: str, fitted: Dict[str, Link]) -> Link:
    if rate in fitted:
        return fitted[rate]
    alpha = min((l.alpha for l in fitted.values()), default=50e-6)
    return Link.nominal(RATES[rate], alpha=alpha, name=rate)


def collective_for(spec: str, ranks: int, codec: Optional[Codec]) -> str:
    if codec is None:
        return "ring"
    if codec.summable:
        return "allreduce"
    if ranks <= 2:
        return "allgather"
    return "gtopk" if codec.sparse_k else "qring"


def validate(records: Sequence[Dict[str, Any]], profiles: Dict[str, ModelProfile],
             codecs: Dict[str, Optional[Codec]], links: Dict[str, Link]) -> List[Dict]:
    """Predicted vs measured step of every dtnn overlap row on a shaped link."""
    none = {(r["model_spec"], r["hosts"], r["link"], r.get("ranks", r["hosts"])):
            r["step_seconds"] for r in records
            if r.get("framework") == "dtnn" and r.get("mode") == "none"}
    out = []
    for r in records:
        if r.get("framework") != "dtnn" or r.get("mode") != "overlap":
            continue
        spec = r.get("compress", "none").split("|")[0]
        key = (r["model_spec"], r["hosts"], r["link"], r.get("ranks", r["hosts"]))
        if key not in none or r["link"] not in links or r["model_spec"] not in profiles \
                or spec not in codecs:
            continue
        prof = profiles[r["model_spec"]]
        compute = none[key]
        slow = compute / prof.compute
        codec = codecs[spec]
        if codec is not None:
            codec = Codec(codec.encode * slow, codec.decode * slow, codec.payload_ratio,
                          codec.summable, codec.rounds, codec.sparse_k)
        ranks = r.get("ranks", r["hosts"])
        local = ranks // r["hosts"]
        algo = r.get("algorithm") or collective_for(spec, ranks, codec)
        pred = predict_step(compute, prof.exchange(r.get("bucket_mb") or 4.0), ranks,
                            links[r["link"]], algo, codec, local)
        out.append({"model": r["model_spec"], "hosts": r["hosts"], "ranks": ranks,
                    "link": r["link"], "compress": r.get("compress", "none"),
                    "algorithm": algo, "measured": r["step_seconds"],
                    "predicted": pred["step"],
                    "error": pred["step"] / r["step_seconds"] - 1.0})
    return out


def extrapolate(profiles: Dict[str, ModelProfile], codecs: Dict[str, Optional[Codec]],
                links: Dict[str, Link], nodes: Sequence[int] = (2, 4, 8, 16, 32, 64, 128, 256),
                rates: Sequence[str] = ("1gbit", "10gbit", "100gbit")) -> List[Dict]:
    rows = []
    for mspec, prof in profiles.items():
        ex = prof.exchange(4.0)
        for rate in rates:
            link = link_for(rate, links)
            for n in nodes:
                for spec, codec in codecs.items():
                    algo = collective_for(spec, n, codec)
                    pred = predict_step(prof.compute, ex, n, link, algo, codec)
                    rows.append({"model": mspec, "link": rate, "nodes": n, "compress": spec,
                                 "collective": algo, **pred})
    return rows


def plot(rows: Sequence[Dict], out: Path) -> List[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = []
    for mspec in dict.fromkeys(r["model"] for r in rows):
        rates = list(dict.fromkeys(r["link"] for r in rows))
        fig, axes = plt.subplots(1, len(rates), figsize=(5 * len(rates), 4), sharey=True)
        for ax, rate in zip(np.atleast_1d(axes), rates):
            for spec in dict.fromkeys(r["compress"] for r in rows):
                pts = [(r["nodes"], r["efficiency"]) for r in rows
                       if r["model"] == mspec and r["link"] == rate and r["compress"] == spec]
                ax.plot(*zip(*pts), marker="o", label=spec)
            ax.set_xscale("log", base=2)
            ax.set_title(f"{mspec}, {rate}")
            ax.set_xlabel("nodes")
            ax.grid(True, alpha=0.3)
        np.atleast_1d(axes)[0].set_ylabel("communication efficiency (predicted)")
        np.atleast_1d(axes)[-1].legend(fontsize=7)
        fig.tight_layout()
        path = out / f"model_{mspec.replace(':', '_').replace('=', '')}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def table(rows: Sequence[Dict], nodes=(2, 16, 64, 256)) -> str:
    lines = []
    for mspec in dict.fromkeys(r["model"] for r in rows):
        lines += [f"### {mspec}", "", "| link | compressor | " +
                  " | ".join(f"{n} nodes: eff. (step ms, KiB recv/rank)" for n in nodes) + " |",
                  "|---|---|" + "---|" * len(nodes)]
        for rate in dict.fromkeys(r["link"] for r in rows):
            for spec in dict.fromkeys(r["compress"] for r in rows):
                cells = []
                for n in nodes:
                    r = next((r for r in rows if r["model"] == mspec and r["link"] == rate
                              and r["compress"] == spec and r["nodes"] == n), None)
                    cells.append("-" if r is None else
                                 f"{r['efficiency']:.2f} ({1e3 * r['step']:.0f}, "
                                 f"{r['recv_bytes'] / 1024:,.0f})")
                lines.append(f"| {rate} | {spec} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def report(result: Dict[str, Any], plots: Sequence[Path]) -> str:
    """The markdown of one ``dtnn bench model`` run."""
    lines = [f"# Cost model of the gradient exchange (`dtnn bench model`)", "",
             f"CPU: {result['cpu']}; {result['time']}.", "", "## Calibration", "",
             "| link | alpha (us) | usable bandwidth (Mbit/s) |", "|---|---|---|"]
    for name, l in result["links"].items():
        lines.append(f"| {name} (fitted) | {1e6 * l['alpha']:.0f} | {8 / l['beta'] / 1e6:.1f} |")
    lines += ["", "| model | parameters | step, 1 rank, 1 thread (ms) | buckets of 4 MiB "
              "ready at (fraction of the step) |", "|---|---|---|---|"]
    for name, p in result["profiles"].items():
        prof = ModelProfile(**p)
        ready = ", ".join(f"{f:.2f}" for _, f in prof.exchange(4.0).buckets)
        lines.append(f"| {name} | {p['params']:,} | {1e3 * p['compute']:.1f} | {ready} |")
    lines += ["", "| compressor | encode (ns/element) | decode (ns/element) | payload / fp32 |",
              "|---|---|---|---|"]
    for name, c in result["codecs"].items():
        if c is None:
            continue
        lines.append(f"| {name} | {1e9 * c['encode']:.2f} | {1e9 * c['decode']:.2f} | "
                     f"{c['payload_ratio']:.4f} |")
    checks = result["validation"]
    if checks:
        errs = np.abs([c["error"] for c in checks])
        lines += ["", "## Validation against the simulated cluster", "",
                  f"{len(checks)} rows; |error| median {100 * np.median(errs):.1f}%, "
                  f"max {100 * errs.max():.1f}%; within 15%: "
                  f"{int(np.sum(errs <= 0.15))} of {len(checks)}.", "",
                  "| model | hosts x ranks | link | exchange | collective | measured ms | "
                  "predicted ms | error |", "|---|---|---|---|---|---|---|---|"]
        for c in checks:
            lines.append(f"| {c['model']} | {c['hosts']} x {c['ranks'] // c['hosts']} | "
                         f"{c['link']} | {c['compress']} | {c['algorithm']} | "
                         f"{1e3 * c['measured']:.0f} | {1e3 * c['predicted']:.0f} | "
                         f"{100 * c['error']:+.1f}% |")
    lines += ["", "## Predictions: one rank per node (one core), batch 32 per rank", "",
              "Communication efficiency = compute / step (step ms, KiB received per rank "
              "per step).", "", table(result["predictions"]), ""]
    lines += [f"![{p.name}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"


def dump(obj) -> Any:
    if isinstance(obj, (Link, Codec, ModelProfile)):
        return dict(obj.__dict__)
    return obj


__all__ = ["profile_model", "measure_codec", "fit_links", "validate", "extrapolate", "plot",
           "table", "math"]
