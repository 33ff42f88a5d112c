"""The outputs of ``dtnn bench model``: the markdown report, its tables and plots."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np

from dtnn.bench.costmodel import ModelProfile


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


def _factor(f: Dict[str, Any]) -> str:
    return (f"{f['factor']:.2f}x ({f['measured_ms']:.1f} vs {f['kernels_ms']:.1f} ms, "
            f"{f['collective']}, {f['ranks']})")


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
    cal = result.get("codec_calibration") or {}
    kern = result.get("codec_kernels") or {}
    lines += ["", "| compressor | encode (ns/element) | decode (ns/element) | payload / fp32 "
              "| kernels alone: encode / decode (ns/element) | reducer / kernels (shm, "
              "collective, ranks) |", "|---|---|---|---|---|---|"]
    for name, c in result["codecs"].items():
        if c is None:
            continue
        k = kern.get(name, c)
        f = cal.get(name)
        lines.append(f"| {name} | {1e9 * c['encode']:.2f} | {1e9 * c['decode']:.2f} | "
                     f"{c['payload_ratio']:.4f} | {1e9 * k['encode']:.2f} / "
                     f"{1e9 * k['decode']:.2f} | " +
                     ("; ".join(_factor(g) for g in [f] + list((f.get("collectives") or {})
                                                              .values()))
                      if f else "not calibrated") + " |")
    over = result.get("oversub")
    if over:
        lines += ["", "### Ranks sharing cores (`--oversub`, `dtnn.bench.oversub` runs)", "",
                  f"Fitted: **{1e9 * over['cpu_per_byte']:.2f} ns of CPU per byte sent** "
                  f"(x ranks per core, for the bytes moved while compute runs), "
                  f"**{1e6 * over['wait_per_hop']:.0f} us per hop**, **"
                  f"{1e3 * over['wait_per_step']:.2f} ms per step** (the model without "
                  "progress-bound hops) and **"
                  f"{1e3 * over.get('wait_per_round', 0.0):.2f} ms per round after compute**"
                  " (with them) of waiting for peers without a core, per extra rank per "
                  "core.", "",
                  "| run | ranks per core | compute block ms (with traffic) | CPU ns/byte "
                  "| hop us (tight loop) | wait after block ms | wait after block with "
                  "buckets ms | round after a short block ms | load |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in result.get("oversub_runs") or []:
            b = r.get("after_buckets_ms")
            ch = r.get("chain_round_ms")
            lines.append(f"| {r['label']} ({r.get('time') or ''}) | {r['ranks_per_core']:g} | "
                         f"{r['compute_ms']:.1f} ({r['compute_with_traffic_ms']:.1f}) | "
                         f"{r['cpu_ns_per_byte']:.2f} | {r['hop_us']:.0f} | "
                         f"{r['after_compute_ms']:.2f} | "
                         f"{'-' if b is None else f'{b:.2f}'} | "
                         f"{'-' if ch is None else f'{ch:.2f}'} | "
                         f"{', '.join(f'{x:.2f}' for x in (r.get('load') or [])[:1])} |")
    checks = result["validation"]
    if checks:
        counted = [c for c in checks if c.get("modelled", True)]
        errs = np.abs([c["error"] for c in counted]) if counted else np.zeros(1)
        lines += ["", "## Validation against the simulated cluster", "",
                  f"{len(counted)} rows modelled (inline exchange); |error| median "
                  f"{100 * np.median(errs):.1f}%, max {100 * errs.max():.1f}%; within 15%: "
                  f"{int(np.sum(errs <= 0.15))} of {len(counted)}. Rows marked * (the "
                  "exchange thread) are outside the model and not counted. " +
                  ("Collectives advance at the backward hooks (progress-bound hops and "
                   "blocking rounds, `costmodel_rounds`)." if result.get("hops", False)
                   else "Collectives advance continuously (`--no-hops`)."), "",
                  "| model | hosts x ranks | link | exchange | collective | measured ms | "
                  "predicted ms | error | compute ms meas. / pred. | codec ms meas. / pred. "
                  "| exposed ms meas. / pred. | ranks per core: oversub. term ms (its CPU) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]

        def ms(x):
            return "-" if x is None else f"{1e3 * x:.0f}"
        for c in checks:
            m, p = c.get("split_measured", {}), c.get("split_predicted", {})
            terms = " | ".join(f"{ms(m.get(k))} / {ms(p.get(k))}"
                               for k in ("compute", "codec", "exposed"))
            star = "" if c.get("modelled", True) else " *"
            lines.append(f"| {c['model']} | {c['hosts']} x {c['ranks'] // c['hosts']} | "
                         f"{c['link']} | {c['compress']}{star} | {c['algorithm']} | "
                         f"{1e3 * c['measured']:.0f} | {1e3 * c['predicted']:.0f} | "
                         f"{100 * c['error']:+.1f}% | {terms} | "
                         f"{c.get('ranks_per_core', 1):g}: {1e3 * c.get('oversub', 0):.1f} "
                         f"({1e3 * c.get('oversub_cpu', 0):.1f}) |")
    preds = result["predictions"]
    for s, cpu in dict.fromkeys((r.get("ranks_per_core", 1.0), r.get("transfer_cpu", True))
                                for r in preds):
        what = ("one rank per core (a real cluster)" if s == 1 else
                f"{s:g} ranks per core (as this machine's simulated hosts)")
        how = (" The oversubscription term is in every step, with this machine's CPU "
               "per byte of TCP." if over and cpu else
               " A transport that takes no CPU from the ranks' cores (RDMA, offloading "
               "NICs): no oversubscription term." if over else "")
        lines += ["", f"## Predictions: {what}{'' if cpu else ', transfer without CPU'}, "
                  "batch 32 per rank", "",
                  "Communication efficiency = compute / step (step ms, KiB received per "
                  "rank per step)." + how, "",
                  table([r for r in preds if r.get("ranks_per_core", 1.0) == s
                         and r.get("transfer_cpu", True) == cpu]), ""]
    lines += [f"![{p.name}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"
