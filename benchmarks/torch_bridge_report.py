"""Markdown tables from ``bench_torch_bridge.py``'s JSON lines (``--report``)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from dtnn.bench.scaling import read_records

LINK_ORDER = {"shm": 0, "100mbit": 1, "1gbit": 2}


def _latest(records: List[Dict], key) -> Dict:
    """The last record per key (reruns replace earlier measurements)."""
    out: Dict = {}
    for r in records:
        out[key(r)] = r
    return out


def _cell_name(hosts: int, link: str) -> str:
    return f"{hosts}x {'shared mem' if link == 'shm' else link}"


def throughput_tables(records: List[Dict]) -> str:
    rows = [r for r in records if r.get("kind") == "throughput"]
    latest = _latest(rows, lambda r: (r["model_spec"], r["hosts"], r["link"],
                                      r["framework"], r["mode"]))
    parts = []
    for model in dict.fromkeys(r["model_spec"] for r in rows):
        mine = [r for r in latest.values() if r["model_spec"] == model]
        cells = sorted({(r["hosts"], r["link"]) for r in mine},
                       key=lambda c: (LINK_ORDER.get(c[1], 9), c[0]))
        params = mine[0].get("params")
        parts.append(f"### {model} ({params:,} parameters), samples/s "
                     "(communication efficiency = / the framework's no_sync row)\n")
        parts.append("| framework | exchange | " + " | ".join(_cell_name(*c) for c in cells)
                     + " |")
        parts.append("|---|---|" + "---:|" * len(cells))
        order = [("torch-ddp", m) for m in ("nosync", "none", "fp16", "powersgd")]
        order += [("dtnn-torch", m) for m in dict.fromkeys(
            r["mode"] for r in mine if r["framework"] == "dtnn-torch")]
        for fw, mode in order:
            vals = []
            for h, l in cells:
                r = latest.get((model, h, l, fw, mode))
                if r is None:
                    vals.append("")
                    continue
                eff = r.get("communication_efficiency")
                vals.append(f"{r['samples_per_second']:.0f}"
                            + (f" ({eff:.2f})" if eff is not None and mode != "nosync"
                               else ""))
            if any(vals):
                name = "DDP gloo" if fw == "torch-ddp" else "dtnn.torch"
                parts.append(f"| {name} | {mode} | " + " | ".join(vals) + " |")
        parts.append("")
        parts.append(_vs_ddp(latest, model, cells))
    return "\n".join(parts)


def _vs_ddp(latest: Dict, model: str, cells) -> str:
    lines = ["Uncompressed dtnn.torch / DDP (samples/s ratio; target >= 1) and the "
             "overhead check: dtnn.torch step / (DDP no_sync step + MPI Allreduce of the "
             "gradient) (target <= 1.05):\n",
             "| cell | dtnn.torch none / DDP none | best dtnn.torch / best DDP | "
             "overhead ratio | MPI allreduce ms | gloo allreduce ms |",
             "|---|---:|---:|---:|---:|---:|"]
    for h, l in cells:
        d = latest.get((model, h, l, "dtnn-torch", "none"))
        t = latest.get((model, h, l, "torch-ddp", "none"))
        ns = latest.get((model, h, l, "torch-ddp", "nosync"))
        if d is None:
            continue
        ratio = f"{d['samples_per_second'] / t['samples_per_second']:.2f}" if t else ""
        best_d = max((r["samples_per_second"] for k, r in latest.items()
                      if k[:4] == (model, h, l, "dtnn-torch") and not k[4].startswith("nosync")),
                     default=None)
        best_t = max((r["samples_per_second"] for k, r in latest.items()
                      if k[:4] == (model, h, l, "torch-ddp") and not k[4].startswith("nosync")),
                     default=None)
        best = f"{best_d / best_t:.2f}" if best_d and best_t else ""
        mpi = d.get("mpi_allreduce_seconds")
        over = ""
        if ns and mpi is not None:
            over = f"{d['step_seconds'] / (ns['step_seconds'] + mpi):.3f}"
        gloo = d.get("gloo_allreduce_seconds")
        lines.append(f"| {_cell_name(h, l)} | {ratio} | {best} | {over} | "
                     f"{'' if mpi is None else f'{mpi * 1e3:.1f}'} | "
                     f"{'' if gloo is None else f'{gloo * 1e3:.1f}'} |")
    return "\n".join(lines) + "\n"


def tta_table(records: List[Dict]) -> str:
    """One table per cluster cell (hosts, link), then the accuracy-target verdict:
    the fastest dtnn.torch run vs DDP's PowerSGD hook in the same cell, its final
    accuracy vs uncompressed DDP's (the same maths on any link: a shared-memory run
    of the same ranks and config counts)."""
    rows = [r for r in records if r.get("kind") == "tta"]
    if not rows:
        return ""
    latest = _latest(rows, lambda r: (r["hosts"], r["link"], r["framework"], r["name"]))

    def fmt(v: Optional[float], f: str) -> str:
        return "not reached" if v is None else format(v, f)

    out = []
    for hosts, link in sorted({k[:2] for k in latest},
                              key=lambda c: (c[1] == "shm", LINK_ORDER.get(c[1], 9), c[0])):
        mine = {k[2:]: r for k, r in latest.items() if k[:2] == (hosts, link)}
        target = next(iter(mine.values()))["target"]
        out += [f"### Time to {target:.0%} test accuracy, {_cell_name(hosts, link)} "
                "(training seconds, evaluation excluded)\n",
                "| framework | exchange | time to target (s) | at step | final accuracy | "
                "steps | s/step | bytes sent/step/rank |",
                "|---|---|---:|---:|---:|---:|---:|---:|"]
        for (fw, name), r in sorted(mine.items(), key=lambda kv: (
                kv[1]["time_to_accuracy"] is None, kv[1]["time_to_accuracy"] or 0)):
            sent = r.get("sent_bytes")
            out.append(f"| {'DDP gloo' if fw == 'torch-ddp' else 'dtnn.torch'} | {name} | "
                       f"{fmt(r['time_to_accuracy'], '.1f')} | "
                       f"{r.get('reached_at_step') or ''} | "
                       f"{fmt(r['final_eval_accuracy'], '.4f')} | {r['steps']} | "
                       f"{fmt(r['step_seconds'], '.3f')} | "
                       f"{'' if sent is None else f'{sent:,.0f}'} |")
        out.append("")
    out.append(tta_verdict(latest))
    return "\n".join(out) + "\n"


def tta_verdict(latest: Dict) -> str:
    """Target 2 per slow cell that has a DDP PowerSGD run and a reached dtnn.torch run."""
    lines = []
    ref = next((r for k, r in latest.items() if k[2:] == ("torch-ddp", "none")
                and r.get("final_eval_accuracy") is not None), None)
    for hosts, link in sorted({k[:2] for k in latest if k[1] != "shm"}):
        psgd = latest.get((hosts, link, "torch-ddp", "powersgd"))
        best = min((r for k, r in latest.items() if k[:3] == (hosts, link, "dtnn-torch")
                    and r.get("time_to_accuracy") is not None),
                   key=lambda r: r["time_to_accuracy"], default=None)
        if psgd is None or best is None:
            continue
        speed = (f"{psgd['time_to_accuracy'] / best['time_to_accuracy']:.2f}x sooner"
                 if psgd.get("time_to_accuracy") else "DDP PowerSGD did not reach it")
        acc = ""
        if ref is not None:
            gap = (best["final_eval_accuracy"] - ref["final_eval_accuracy"]) * 100
            acc = (f"; final accuracy {best['final_eval_accuracy']:.4f} vs uncompressed "
                   f"DDP {ref['final_eval_accuracy']:.4f} ({gap:+.2f} pp, measured "
                   f"{_cell_name(ref['hosts'], ref['link'])})")
        lines.append(f"- {_cell_name(hosts, link)}: best dtnn.torch ({best['name']}) "
                     f"reaches the target {speed} than DDP + PowerSGD{acc}.")
    return "\n".join(lines)


def report(out: Path) -> str:
    parts = []
    thr = read_records(out / "throughput.jsonl")
    if thr:
        tests = [r for r in thr if r.get("kind") == "selftest"]
        if tests:
            parts.append("Link self-tests:\n\n```\n" + "\n".join(
                line for t in tests for line in t.get("lines", [])) + "\n```\n")
        parts.append(throughput_tables(thr))
    parts.append(tta_table(read_records(out / "tta.jsonl")))
    return "\n".join(p for p in parts if p)
