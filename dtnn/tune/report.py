"""The tuning report: JSON rows (from ``dtnn.tune.collect()``) and a text table."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional


def format_report(rows: List[Dict[str, Any]]) -> str:
    if not rows:
        return "no tuning decisions\n"
    lines = []
    head = (f"{'tuner':<10} {'layers':<18} {'key':<64} {'winner':<10} {'src':<6} "
            f"{'speedup':>7} {'cost s':>7}  alternatives (statistic, ms)")
    lines.append(head)
    lines.append("-" * len(head))
    for r in rows:
        alts = ", ".join(f"{n}={v * 1e3:.2f}" + ("(p)" if n in r.get("pruned", {}) else "")
                         for n, v in sorted(r["stats"].items(), key=lambda kv: kv[1]))
        excluded = r.get("excluded") or {}
        if excluded:
            alts += "; excluded (error): " + ", ".join(f"{n} {e:.1e}"
                                                      for n, e in sorted(excluded.items()))
        sp = r.get("speedup_vs_default")
        cost = r.get("tuning_cost_seconds")
        labels = ",".join(r.get("labels") or [])[:18]
        lines.append(f"{r['tuner']:<10} {labels:<18} {r['key'][:64]:<64} "
                     f"{str(r['winner']):<10} {r['source'][:6]:<6} "
                     f"{(f'{sp:.2f}x' if sp else '-'):>7} "
                     f"{(f'{cost:.3f}' if cost is not None else '-'):>7}  {alts}")
    total = sum(r.get("tuning_cost_seconds") or 0.0 for r in rows)
    lines.append(f"total tuning cost (time beyond the winner's, during tuning): {total:.3f} s")
    lines.append(summary(rows))
    return "\n".join(lines) + "\n"


def summary(rows: List[Dict[str, Any]]) -> str:
    """One line: how the choices were made, what tuning cost, what was excluded."""
    conv = [r for r in rows if r["tuner"] in ("conv", "conv_infer")] or rows
    sources: Dict[str, int] = {}
    for r in conv:
        sources[r["source"]] = sources.get(r["source"], 0) + 1
    cost = sum(r.get("tuning_cost_seconds") or 0.0 for r in rows)
    excluded: Dict[str, int] = {}
    for r in conv:
        for n in r.get("excluded") or {}:
            excluded[n] = excluded.get(n, 0) + 1
    text = (f"BestOf: {len(conv)} convolution shape(s) (" +
            ", ".join(f"{k} {v}" for k, v in sorted(sources.items())) +
            f"); tuning cost {cost:.2f} s")
    if "budget" in sources:
        text += " (tune.max_seconds reached: later runs tune on)"
    if excluded:
        text += "; excluded for accuracy: " + ", ".join(
            f"{n} on {c} shape(s)" for n, c in sorted(excluded.items()))
    return text


def write_report(directory: str, rows: Optional[List[Dict[str, Any]]] = None) -> None:
    if rows is None:
        from dtnn.tune import collect
        rows = collect()
    if not rows:
        return
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "tuning.json"), "w", encoding="utf-8") as fh:
        json.dump(rows, fh, indent=1)
    with open(os.path.join(directory, "tuning.txt"), "w", encoding="utf-8") as fh:
        fh.write(format_report(rows))
    from dtnn.log import get_logger
    get_logger().info(summary(rows))
