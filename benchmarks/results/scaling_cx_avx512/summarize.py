"""The before/after table of scaling.md's "AVX-512 compression kernels" subsection."""
import json
import sys
from pathlib import Path

import numpy as np

D = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/scaling_cx_avx512")


def load(d):
    rows = [json.loads(l) for l in open(D / d / "scaling.jsonl")]
    base = {r["hosts"]: r for r in rows if r.get("framework") == "dtnn" and r.get("mode") == "none"}
    out = {}
    for r in rows:
        if r.get("framework") == "dtnn" and r.get("mode") == "overlap":
            b = base[r["hosts"]]
            out[(r["hosts"], r["compress"])] = dict(
                eff=r["samples_per_second"] / b["samples_per_second"],
                paired=r.get("efficiency_paired"), algo=r.get("algorithm"),
                step=1e3 * r["step_seconds"], ref=1e3 * r.get("reference_step_seconds", np.nan),
                skip=1e3 * b["step_seconds"], codec=1e3 * r["codec_seconds"],
                exp=1e3 * r["exposed_comm_seconds"], hook=1e3 * r["hook_mpi_seconds"],
                tsteps=r.get("tune_steps"), textra=1e3 * (r.get("tune_extra_seconds") or 0.0),
                load=r["load_average"][0])
    return out


runs = {d.name: load(d.name) for d in sorted(D.iterdir()) if (d / "scaling.jsonl").exists()}
pairs = sorted({k.split("_")[1] for k in runs})
specs = ["int8", "qsgd:bits=8", "terngrad", "sign", "randomk:ratio=0.01",
         "terngrad|collective=qring,tune=false", "sign|collective=qring,tune=false"]
print("runs:", ", ".join(runs))
print("| exchange | hosts | collective (before / after) | efficiency before: job ref, paired ref | after: job ref, paired ref "
      "| after - before (paired) | after step / paired ref / codec / exposed / hook ms | before codec ms | tuning: steps, extra ms (after) |")
print("|---|---|---|---|---|---|---|---|---|")
for h in (2, 4):
    for s in specs:
        for p in pairs:
            b, a = runs.get(f"base_{p}", {}).get((h, s)), runs.get(f"avx512_{p}", {}).get((h, s))
            if not (a and b):
                continue
            name = s.replace("|", "\\|")  # a spec's reducer options: not a table cell
            print(f"| {name} | {h} | {b['algo']} / {a['algo']} | {b['eff']:.3f}, {b['paired']:.3f} "
                  f"| {a['eff']:.3f}, {a['paired']:.3f} | {a['paired'] - b['paired']:+.3f} "
                  f"| {a['step']:.1f} / {a['ref']:.1f} / {a['codec']:.1f} / {a['exp']:.1f} / {a['hook']:.1f} "
                  f"| {b['codec']:.1f} | {a['tsteps']}, {a['textra']:+.0f} |")
