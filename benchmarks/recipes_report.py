"""Tables for benchmarks/results/recipes.md from the campaign's JSON lines.

    python benchmarks/recipes_report.py benchmarks/results/recipes.jsonl --out /tmp/tables.md
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from typing import Dict, List

LN_K = math.log(10)


def load(path: str) -> List[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def seeds_table(rows: List[dict]) -> List[str]:
    by: Dict[str, List[dict]] = defaultdict(list)
    for r in rows:
        if r["name"].startswith("seeds/"):
            by[r["dataset"]].append(r)
    out = ["| dataset | test accuracy, seeds 0-4 (%) | median | max distance from median (pp) "
           "| epoch-1 train loss, seeds 0-4 (ln 10 = 2.30) | targets |", "|---|---|---|---|---|---|"]
    for d, runs in by.items():
        runs.sort(key=lambda r: r["seed"])
        accs = [r.get("test_accuracy") for r in runs]
        ok = [a for a in accs if a is not None]
        med = statistics.median(ok) if ok else None
        spread = max(abs(a - med) for a in ok) * 100 if ok else None
        first = [r["train_loss"][0] if r.get("train_loss") else None for r in runs]
        met = (len(ok) == 5 and spread <= 1.0 and all(f is not None and f <= LN_K for f in first))
        out.append(f"| {d} | {', '.join(pct(a) for a in accs)} | {pct(med)} | "
                   f"{'-' if spread is None else f'{spread:.2f}'} | "
                   f"{', '.join('-' if f is None else f'{f:.3f}' for f in first)} | "
                   f"{'met' if met else ('incomplete' if len(ok) < 5 else 'MISSED')} |")
    return out


def main_table(rows: List[dict]) -> List[str]:
    out = ["| run | kernels | processes | test accuracy (%) | epoch-1 train loss | wall s |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        if r["name"].startswith("main"):
            env = r.get("env") or {}
            kern = ("AVX2 (" + ", ".join(f"{k}={v}" for k, v in sorted(env.items())) + ")"
                    if env else "default (best ISA of the CPU)")
            first = r["train_loss"][0] if r.get("train_loss") else None
            calls = f" ({r['calls']} calls)" if r.get("calls") else ""
            out.append(f"| {r['name']} | {kern} | {r.get('procs')} | {pct(r.get('test_accuracy'))}"
                       f" | {'-' if first is None else f'{first:.3f}'} | "
                       f"{r['seconds']:.0f}{calls} |")
    return out


def rule_of(name: str) -> str:
    """lrfind[-train]/DATASET[/fraction=F]: lines without a fraction ran the first rule."""
    parts = name.split("/")
    return parts[2].split("=", 1)[1] if len(parts) > 2 else "0.1"


def lr_table(rows: List[dict]) -> List[str]:
    # a sweep run that the divergence guard stopped counts, with accuracy None
    sweep: Dict[str, Dict[float, object]] = defaultdict(dict)
    found: Dict[tuple, float] = {}
    at_found: Dict[tuple, float] = {}
    for r in rows:
        if r["name"].startswith("sweep/"):
            sweep[r["dataset"]][r.get("config_lr", r["lr"])] = r.get("test_accuracy")
        elif r["name"].startswith("seeds/") and r["seed"] == 0 and r.get("test_accuracy"):
            sweep[r["dataset"]].setdefault(0.05, r["test_accuracy"])
        elif r["name"].startswith("lrfind/"):
            found[(r["dataset"], rule_of(r["name"]))] = r.get("suggested_lr")
        elif r["name"].startswith("lrfind-train/"):
            at_found[(r["dataset"], rule_of(r["name"]))] = r.get("test_accuracy")
    out = ["| dataset | test accuracy by lr (%), seed 0, 12 epochs | best of the 5-value sweep | "
           "rule (fraction of the lowest-loss lr) | lr-find suggestion | accuracy there | "
           "gap (pp) | target (<= 0.5 pp) |", "|---|---|---|---|---|---|---|---|"]
    for d, rule in sorted(set(found) | {(d, "-") for d in sweep if not any(
            k[0] == d for k in found)}):
        grid = sweep.get(d, {})
        five = {lr: a for lr, a in grid.items() if lr != 0.05}
        scored = {lr: a for lr, a in five.items() if a is not None}
        best_lr, best = max(scored.items(), key=lambda kv: kv[1]) if scored else (None, None)
        acc = at_found.get((d, rule))
        gap = None if best is None or acc is None else (best - acc) * 100
        cells = ", ".join(f"{lr:g}: {'stopped' if a is None else pct(a)}"
                          for lr, a in sorted(grid.items()))
        verdict = "incomplete" if gap is None or len(five) < 5 else (
            "met" if gap <= 0.5 else "MISSED")
        lr = found.get((d, rule))
        out.append(f"| {d} | {cells} | {pct(best)} (lr {best_lr and f'{best_lr:g}'}) | {rule} | "
                   f"{'-' if lr is None else f'{lr:.3g}'} | {pct(acc)} | "
                   f"{'-' if gap is None else f'{gap:+.2f}'} | {verdict} |")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("jsonl")
    p.add_argument("--out", default="-")
    args = p.parse_args()
    rows = load(args.jsonl)
    text = "\n".join(["### Seeds", *seeds_table(rows), "", "### Main job (20 epochs)",
                      *main_table(rows), "", "### lr-find vs a learning-rate sweep",
                      *lr_table(rows), ""])
    if args.out == "-":
        print(text)
    else:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
