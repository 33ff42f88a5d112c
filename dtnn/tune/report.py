"""The tuning report: JSON rows (from ``dtnn.tune.collect()``) and a text table."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional


def format_report(rows: List[Dict[str, Any]]) -> str:
    if not rows:
        return "no tuning decisions\n"
    lines = []
    head = (f"{'tuner':<10} {'layers':<18} {'key':<50} {'winner':<10} {'src':<6} "
            f"{'speedup':>7} {'cost s':>7}  alternatives (statistic, ms)")
    lines.append(head)
    lines.append("-" * len(head))
    for r in rows:
        alts = ", ".join(f"{n}={v * 1e3:.2f}" + ("(p)" if n in r.get("pruned", {}) else "")
                         for n, v in sorted(r["stats"].items(), key=lambda kv: kv[1]))
        sp = r.get("speedup_vs_default")
        cost = r.get("tuning_cost_seconds")
        labels = ",".join(r.get("labels") or [])[:18]
        lines.append(f"{r['tuner']:<10} {labels:<18} {r['key'][:50]:<50} "
                     f"{str(r['winner']):<10} {r['source'][:6]:<6} "
                     f"{(f'{sp:.2f}x' if sp else '-'):>7} "
                     f"{(f'{cost:.3f}' if cost is not None else '-'):>7}  {alts}")
    total = sum(r.get("tuning_cost_seconds") or 0.0 for r in rows)
    lines.append(f"total tuning cost (time beyond the winner's, during tuning): {total:.3f} s")
    return "\n".join(lines) + "\n"


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
