"""Tables (Markdown, CSV) and plots (PNG) from ``scaling.jsonl`` and ``tta.jsonl``.

    dtnn bench scaling --report-only --out benchmarks/results/scaling
"""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional

from dtnn.bench.scaling import read_records

CSV_COLUMNS = ["model_spec", "params", "hosts", "link", "framework", "mode", "compress",
               "samples_per_second", "step_seconds", "compute_seconds", "codec_seconds",
               "exposed_comm_seconds", "comm_seconds", "sent_bytes", "compression_ratio",
               "efficiency", "batch_per_rank", "steps", "load_average", "time"]


def label(r: Dict[str, Any]) -> str:
    if r["framework"] == "torch-ddp":
        return "DDP no_sync (no exchange)" if r["mode"] == "nosync" else f"DDP {r['mode']}"
    if r["mode"] in ("none", "serial"):
        return "dtnn no exchange" if r["mode"] == "none" else "dtnn 1 rank"
    return f"dtnn {r['compress']}" + (" (blocking)" if r["mode"] == "blocking" else "")


def latest(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The last measurement of each (model, hosts, link, framework, mode, compress)."""
    keep: Dict[tuple, Dict[str, Any]] = {}
    for r in records:
        if r.get("kind") == "throughput":
            keep[(r["model_spec"], r["hosts"], r["link"], r["framework"], r["mode"],
                  r.get("compress"))] = r
    return list(keep.values())


def add_efficiency(rows: List[Dict[str, Any]]) -> None:
    """samples/s / samples/s of the same ranks with the exchange skipped."""
    ref = {}
    for r in rows:
        if (r["framework"], r["mode"]) in (("dtnn", "none"), ("torch-ddp", "nosync")):
            ref[(r["model_spec"], r["hosts"], r["link"], r["framework"])] = r
    for r in rows:
        base = ref.get((r["model_spec"], r["hosts"], r["link"], r["framework"]))
        r["efficiency"] = (r["samples_per_second"] / base["samples_per_second"]
                           if base and r["mode"] != "serial" else None)


def _f(v, fmt="{:.0f}", none="-"):
    return none if v is None else fmt.format(v)


def _ms(v):
    return _f(v, "{:.0f}") if v is None else f"{1e3 * v:.0f}"


def throughput_tables(rows: List[Dict[str, Any]]) -> List[str]:
    out: List[str] = []
    for model in sorted({r["model_spec"] for r in rows}):
        mine = [r for r in rows if r["model_spec"] == model]
        params = mine[0].get("params")
        one = next((r for r in mine if r["hosts"] == 1 and r["framework"] == "dtnn"), None)
        one_ddp = next((r for r in mine if r["hosts"] == 1 and r["framework"] == "torch-ddp"
                        and r["mode"] == "none"), None)
        out += [f"### `{model}` ({params:,} parameters, "
                f"{4 * params / 2**20:.1f} MiB of fp32 gradients)", ""]
        if one or one_ddp:
            out += [f"1 rank (no exchange): dtnn {_f(one and one['samples_per_second'])} "
                    f"samples/s, DDP {_f(one_ddp and one_ddp['samples_per_second'])} "
                    "samples/s.", ""]
        for link in [l for l in ("shm", "100mbit", "1gbit") if any(r["link"] == l for r in mine)] + \
                sorted({r["link"] for r in mine} - {"shm", "100mbit", "1gbit"}):
            sub = [r for r in mine if r["link"] == link and r["hosts"] > 1]
            if not sub:
                continue
            hosts = sorted({r["hosts"] for r in sub})
            out += [f"**Link: {link}**" + (" (plain mpiexec on one machine, shared memory)"
                                         if link == "shm" else " (simulated hosts)"), ""]
            head = "| variant | " + " | ".join(
                f"{h} hosts: samples/s (eff.)" for h in hosts) + \
                f" | {hosts[-1]} hosts: step / compute / codec / exposed ms | KiB sent/rank/step |"
            out += [head, "|---" * (len(hosts) + 3) + "|"]
            variants = []
            for r in sub:   # run order: no-exchange reference first, then spec x mode
                if label(r) not in variants:
                    variants.append(label(r))
            for v in variants:
                cells = []
                last = None
                for h in hosts:
                    r = next((x for x in sub if x["hosts"] == h and label(x) == v), None)
                    cells.append("-" if r is None else
                                 f"{r['samples_per_second']:.0f} ({_f(r['efficiency'], '{:.2f}')})")
                    last = r or last
                split = "-" if last is None else " / ".join(
                    _ms(last.get(k)) for k in ("step_seconds", "compute_seconds",
                                               "codec_seconds", "exposed_comm_seconds"))
                sent = "-" if last is None or last.get("sent_bytes") is None else \
                    f"{last['sent_bytes'] / 1024:,.0f}"
                out.append(f"| {v} | " + " | ".join(cells) + f" | {split} | {sent} |")
            out.append("")
    return out


def tta_table(tta: List[Dict[str, Any]]) -> List[str]:
    runs = {}
    for r in tta:
        if r.get("kind") == "tta":
            runs[(r["framework"], r["name"], r["hosts"], r["link"], r["target"])] = r
    if not runs:
        return []
    out = []
    for (hosts, link, target) in sorted({k[2:] for k in runs}):
        sub = [r for k, r in runs.items() if k[2:] == (hosts, link, target)]
        ddp = {r["name"]: r["time_to_accuracy"] for r in sub if r["framework"] == "torch-ddp"}
        out += [f"**{hosts} hosts, {link}, target test accuracy {target:.2%}**", "",
                "| run | time to accuracy s | steps | s/step (train) | KiB sent/rank/step "
                "| accuracy at stop | vs DDP none | vs DDP powersgd |", "|---" * 8 + "|"]
        for r in sorted(sub, key=lambda r: (r["time_to_accuracy"] is None,
                                            r["time_to_accuracy"] or 0)):
            t = r["time_to_accuracy"]
            name = ("DDP " if r["framework"] == "torch-ddp" else "dtnn ") + r["name"]
            ratio = lambda ref: "-" if not (t and ref) else f"{ref / t:.2f}x"  # noqa: E731
            sent = r.get("sent_bytes")
            out.append(f"| {name} | {_f(t, '{:.1f}', 'not reached')} | {r['steps']} | "
                       f"{_f(r.get('step_seconds'), '{:.3f}')} | "
                       f"{'-' if sent is None else f'{sent / 1024:,.0f}'} | "
                       f"{_f(r.get('final_eval_accuracy'), '{:.4f}')} | "
                       f"{ratio(ddp.get('none'))} | {ratio(ddp.get('powersgd'))} |")
        out.append("")
    return out


def write_csv(rows: List[Dict[str, Any]], path: Path, columns: List[str]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (json.dumps(r[k]) if isinstance(r.get(k), (list, dict))
                            else r.get(k)) for k in columns})


def plot_throughput(rows: List[Dict[str, Any]], out: Path) -> List[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    files = []
    for model in sorted({r["model_spec"] for r in rows}):
        mine = [r for r in rows if r["model_spec"] == model]
        links = [l for l in ("shm", "100mbit", "1gbit") if any(r["link"] == l for r in mine)]
        if not links:
            continue
        fig, axes = plt.subplots(1, len(links), figsize=(5 * len(links), 4), squeeze=False)
        colors = plt.get_cmap("tab20").colors
        for ax, link in zip(axes[0], links):
            series: Dict[str, Dict[int, float]] = defaultdict(dict)
            for r in mine:   # overlap rows only: blocking is in the tables
                if r["link"] == link and r["hosts"] > 1 and r["mode"] != "blocking":
                    series[label(r)][r["hosts"]] = r["samples_per_second"]
            for r in mine:   # 1 rank: the same point starts every line of its framework
                if r["hosts"] == 1 and r["mode"] in ("serial", "none"):
                    for v in series:
                        if v.startswith("dtnn" if r["framework"] == "dtnn" else "DDP"):
                            series[v].setdefault(1, r["samples_per_second"])
            for i, v in enumerate(series):
                pts = series[v]
                hs = sorted(pts)
                style = "--" if v.startswith("DDP") else "-"
                ax.plot(hs, [pts[h] for h in hs], style, marker="o", label=v,
                        color=colors[i % len(colors)])
            ax.set_title(f"{model}, link {link}")
            ax.set_xlabel("hosts (1 rank each)")
            ax.set_ylabel("samples/s")
            ax.set_xticks(sorted({r["hosts"] for r in mine}))
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.tight_layout()
        name = f"throughput_{model.replace(':', '_').replace('=', '')}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        files.append(name)
    return files


def plot_tta(tta: List[Dict[str, Any]], out: Path) -> List[str]:
    runs = [r for r in tta if r.get("kind") == "tta" and r.get("curve")]
    if not runs:
        return []
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.get_cmap("tab20").colors
    for i, r in enumerate(runs):
        xs = [c[0] for c in r["curve"]]
        ys = [c[1] for c in r["curve"]]
        style = "--" if r["framework"] == "torch-ddp" else "-"
        ax.plot(xs, ys, style, marker=".", color=colors[i % len(colors)],
                label=("DDP " if r["framework"] == "torch-ddp" else "dtnn ") + r["name"])
    ax.axhline(runs[0]["target"], color="k", lw=0.8)
    ax.set_xlabel("training seconds (evaluation excluded)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"time to accuracy, {runs[0]['hosts']} hosts, {runs[0]['link']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "tta.png", dpi=110)
    plt.close(fig)
    return ["tta.png"]


def write_report(out: Path) -> Optional[Path]:
    """Regenerate scaling.csv, tta.csv, report.md and the plots from the JSON lines."""
    records = read_records(out / "scaling.jsonl")
    tta = read_records(out / "tta.jsonl")
    rows = latest(records)
    add_efficiency(rows)
    if rows:
        write_csv(rows, out / "scaling.csv", CSV_COLUMNS)
    tta_rows = [r for r in tta if r.get("kind") == "tta"]
    if tta_rows:
        write_csv(tta_rows, out / "tta.csv",
                  ["framework", "name", "hosts", "link", "target", "time_to_accuracy",
                   "time_to_accuracy_wall", "steps", "step_seconds", "sent_bytes",
                   "final_eval_accuracy", "reached_at_epoch", "time"])
    lines = ["# Scaling on the simulated cluster (generated by `dtnn bench scaling`)", ""]
    tests = [r for r in records + tta if r.get("kind") == "selftest"]
    if tests:
        lines += ["## Link self-tests", ""]
        for t in tests:
            lines += [f"* {t['hosts']} hosts, {t['link']} ({t.get('time', '')}, load "
                      f"{t.get('load_average')}): " + " / ".join(
                          ln.split(": ", 1)[-1] for ln in t["lines"])]
        lines.append("")
    if rows:
        lines += ["## Throughput", "", "samples/s of the whole job (slowest rank); eff. = "
                  "communication efficiency (samples/s / samples/s with the exchange "
                  "skipped, same ranks and link).", ""] + throughput_tables(rows)
        plots = plot_throughput(rows, out)
        lines += [f"![{p}]({p})" for p in plots] + [""]
    if tta_rows:
        lines += ["## Time to accuracy", ""] + tta_table(tta_rows)
        lines += [f"![{p}]({p})" for p in plot_tta(tta_rows, out)] + [""]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
