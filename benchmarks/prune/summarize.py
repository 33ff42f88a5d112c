#!/usr/bin/env python
"""Markdown tables from pruning run directories (each with prune.jsonl):

    python benchmarks/prune/summarize.py RUN_DIR [RUN_DIR ...]

Table 1: the final model of each run against its unpruned start. Table 2: test
accuracy of every run at the same fractions of conv feature maps kept (equal budget:
same steps, same fine-tuning iterations at each point)."""
from __future__ import annotations

import json
import os
import sys


def load(run):
    with open(os.path.join(run, "prune.jsonl")) as fh:
        return [json.loads(l) for l in fh if l.strip()]


def main(runs):
    rows = ["| run | criterion | procs | maps kept | params | MB | MFLOPs | test acc | "
            "Δ acc (pp) | macro-F1 | size ÷ | FLOPs ÷ |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    per_run = {}
    for run in runs:
        recs = load(run)
        a, b = recs[0], recs[-1]
        per_run[run] = recs
        rows.append(
            f"| {os.path.basename(run.rstrip('/'))} | {b.get('criterion')} | "
            f"{b.get('processes', 1)} | {b['maps']}/{a['maps']} ({100 * b['maps'] / a['maps']:.0f}%)"
            f" | {b['params']:,} | {b['mb']:.3f} | {b['flops'] / 1e6:.2f} | "
            f"{100 * b['test_accuracy']:.2f} | {100 * (b['test_accuracy'] - a['test_accuracy']):+.2f}"
            f" | {b['test_macro_f1']:.4f} | {a['params'] / b['params']:.1f}x | "
            f"{a['flops'] / b['flops']:.1f}x |")
    print("\n".join(rows))
    print()
    points = sorted({round(r["maps"] / recs[0]["maps"], 2) for recs in per_run.values()
                     for r in recs if "test_accuracy" in r}, reverse=True)
    head = "| maps kept | " + " | ".join(os.path.basename(r.rstrip('/')) for r in runs) + " |"
    print(head)
    print("|---:|" + "---:|" * len(runs))
    for p in points:
        cells = []
        for run in runs:
            recs = per_run[run]
            hit = [r for r in recs if round(r["maps"] / recs[0]["maps"], 2) == p
                   and "test_accuracy" in r]
            cells.append(f"{100 * hit[-1]['test_accuracy']:.2f}" if hit else "")
        if sum(1 for c in cells if c) >= 2:
            print(f"| {p:.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
