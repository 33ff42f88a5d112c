"""Reports of pruning runs: prune.csv and matplotlib plots.

``write_reports(run_dir, records)`` writes one run's CSV and plots;
``compare(run_dirs, out_png)`` overlays several runs (one per criterion) in one figure:
accuracy against parameters, FLOPs and batch-1 latency.
"""
from __future__ import annotations

import csv
import json
import os
from typing import Any, Dict, List, Sequence

from dtnn.io import atomic

COLUMNS = ["step", "criterion", "removed", "iterations", "maps", "dense_units", "params",
           "mb", "flops", "maps_kept", "params_kept", "flops_kept", "test_accuracy",
           "test_macro_f1", "test_loss", "latency_b1_ms", "finetune_loss", "processes"]


def read_records(run_dir: str) -> List[Dict[str, Any]]:
    with open(os.path.join(run_dir, "prune.jsonl")) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_csv(path: str, records: Sequence[Dict[str, Any]]) -> None:
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, COLUMNS, extrasaction="ignore")
            w.writeheader()
            for r in records:
                w.writerow({k: r.get(k, "") for k in COLUMNS})


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _curves(axes, records, label: str) -> None:
    evald = [r for r in records if r.get("test_accuracy") is not None]
    for ax, key, scale in zip(axes, ("params", "flops", "latency_b1_ms"), (1e-6, 1e-6, 1)):
        pts = [(r[key] * scale, 100 * r["test_accuracy"]) for r in evald
               if r.get(key) is not None]
        if pts:
            xs, ys = zip(*pts)
            # latency is measured, not computed: points, not a line through the noise
            style = "none" if key == "latency_b1_ms" else "-"
            ax.plot(xs, ys, marker="o", ms=3, linestyle=style, label=label)
            if key == "latency_b1_ms":
                ax.set_xscale("log")


def _finish_curves(fig, axes, path: str) -> None:
    for ax, name in zip(axes, ("parameters (M)", "forward MFLOPs per sample",
                               "batch-1 latency (ms)")):
        ax.set_xlabel(name)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:   # e.g. latency not measured (prune.latency_reps = 0)
            ax.text(0.5, 0.5, "not measured", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_reports(run_dir: str, records: Sequence[Dict[str, Any]]) -> None:
    write_csv(os.path.join(run_dir, "prune.csv"), records)
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    _curves(axes, records, records[0].get("criterion", "run"))
    _finish_curves(fig, axes, os.path.join(run_dir, "prune_curves.png"))
    plt.close(fig)
    plot_maps(records[0], records[-1], os.path.join(run_dir, "maps_per_layer.png"))


def plot_maps(before: Dict[str, Any], after: Dict[str, Any], path: str) -> None:
    """Bars of the feature maps (conv) and units (dense) per layer, before and after."""
    plt = _plt()
    layers = list(before["maps_per_layer"]) + list(before["units_per_layer"])
    names = [f"conv@{k}" for k in before["maps_per_layer"]] + \
            [f"dense@{k}" for k in before["units_per_layer"]]
    b = [{**before["maps_per_layer"], **before["units_per_layer"]}[k] for k in layers]
    a = [{**after["maps_per_layer"], **after["units_per_layer"]}[k] for k in layers]
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(layers) + 2), 3.6))
    xs = range(len(layers))
    ax.bar([x - 0.2 for x in xs], b, width=0.4, label="before", color="#bbbbbb")
    ax.bar([x + 0.2 for x in xs], a, width=0.4, label="after", color="#3060c0")
    for x, (nb, na) in enumerate(zip(b, a)):
        ax.text(x + 0.2, na, f"{100 * na / nb:.0f}%", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("maps / units")
    ax.set_title(f"kept per layer ({after.get('criterion', '')}, step {after['step']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def compare(run_dirs: Sequence[str], out_png: str) -> None:
    """Accuracy vs parameters / FLOPs / latency of several runs in one figure."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for d in run_dirs:
        records = read_records(d)
        _curves(axes, records, f"{records[0].get('criterion', d)} ({os.path.basename(d)})")
    _finish_curves(fig, axes, out_png)
    plt.close(fig)
