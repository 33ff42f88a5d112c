"""Per-stretch tables from ``DTNN_STEP_TRACE`` files (see ``dtnn.engine.steptrace``).

    python benchmarks/analyze_step_trace.py TRACE_DIR [TRACE_DIR ...] [--json OUT] [--pack]

(``--pack`` bundles a directory's ``steps_rank*.npy`` into one compressed ``steps.npz``
and removes them, for committing results; both forms are read.)

A stretch is the run of steps between two evaluations.  For each stretch and rank:
ms per step (median and 90th percentile of single steps too), the reducer's split
(exposed wait, hooks, codec, the rest = compute), the main thread's CPU time and time
runnable on a run queue per step, voluntary / involuntary context switches per step,
and, per stretch, the machine's steal and idle time and which ranks shared a CPU
(the modal placement: rank r's CPU at the end of each step).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

F = {name: i for i, name in enumerate((
    "t_end", "exposed", "hook", "codec", "backward_window", "thread_cpu", "process_cpu",
    "nvcsw", "nivcsw", "run_ns", "runq_ns", "slices", "cpu", "eval_before", "steal0",
    "steal1", "idle0", "idle1"))}


def _rank_files(trace: Path):
    return sorted(trace.glob("steps_rank*.npy"), key=lambda p: int(p.stem[10:]))


def load(trace: Path):
    if (trace / "steps.npz").exists():
        with np.load(trace / "steps.npz") as z:
            arrays = [z[k] for k in sorted(z.files, key=lambda k: int(k[4:]))]
    else:
        arrays = [np.load(p) for p in _rank_files(trace)]
    n = min(len(a) for a in arrays)
    meta = json.loads((trace / "threads_rank0.json").read_text())
    return [a[:n] for a in arrays], meta


def stretches(rows: np.ndarray):
    """(first, last) row index of each stretch; a stretch's first step follows an
    evaluation, so its first row is dropped (it contains the evaluation's time)."""
    starts = [0] + [int(i) for i in np.flatnonzero(rows[:, F["eval_before"]] > 0)]
    ends = starts[1:] + [len(rows)]
    return [(s + 1, e) for s, e in zip(starts, ends) if e - s > 2]


def pairing(arrays, lo, hi) -> str:
    cpus = np.stack([a[lo:hi, F["cpu"]] for a in arrays], axis=1).astype(int)
    keys = Counter("".join(map(str, row)) for row in cpus)
    key, count = keys.most_common(1)[0]
    return f"{key} {100 * count / max(1, hi - lo):.0f}%"


def summarize(arrays, meta, hz: float):
    out = []
    for lo, hi in stretches(arrays[0]):
        rec = {"steps": hi - lo, "placement": pairing(arrays, lo, hi), "ranks": []}
        a0 = arrays[0]
        wall = a0[hi - 1, F["t_end"]] - a0[lo - 1, F["t_end"]]
        rec["ms_per_step"] = 1e3 * wall / (hi - lo)
        rec["steal_ms"] = [1e3 * (a0[hi - 1, F[k]] - a0[lo - 1, F[k]]) / hz
                           for k in ("steal0", "steal1")]
        rec["idle_ms"] = [1e3 * (a0[hi - 1, F[k]] - a0[lo - 1, F[k]]) / hz
                          for k in ("idle0", "idle1")]
        for a in arrays:
            d = np.diff(a[lo - 1:hi], axis=0)
            step = d[:, F["t_end"]]
            per = lambda k: 1e3 * float(np.mean(a[lo:hi, F[k]]))  # noqa: E731
            cpu = 1e3 * float(np.mean(d[:, F["thread_cpu"]]))
            rec["ranks"].append({
                "ms": 1e3 * float(np.mean(step)),
                "p50": 1e3 * float(np.median(step)), "p90": 1e3 * float(np.percentile(step, 90)),
                "exposed": per("exposed"), "hook": per("hook"), "codec": per("codec"),
                "cpu": cpu,
                "runq": 1e-6 * float(np.mean(d[:, F["runq_ns"]])),
                "vcsw": float(np.mean(d[:, F["nvcsw"]])),
                "ivcsw": float(np.mean(d[:, F["nivcsw"]])),
                "slices": float(np.mean(d[:, F["slices"]])),
            })
        out.append(rec)
    return out


def table(name: str, recs) -> str:
    lines = [f"### {name}", "",
             "| stretch | ms/step | steal ms (cpu0/1) | idle ms (cpu0/1) | placement (modal) "
             "| per rank: p50/p90 ms, exposed, hook, codec, CPU, run-queue ms/step; "
             "vol/invol switches per step |", "|---|---|---|---|---|---|"]
    for i, r in enumerate(recs):
        ranks = "<br>".join(
            f"r{k}: {x['p50']:.1f}/{x['p90']:.1f}, exp {x['exposed']:.1f}, hook {x['hook']:.1f}, "
            f"codec {x['codec']:.1f}, cpu {x['cpu']:.1f}, runq {x['runq']:.1f}; "
            f"{x['vcsw']:.1f}/{x['ivcsw']:.1f}" for k, x in enumerate(r["ranks"]))
        lines.append(f"| {i + 1} ({r['steps']}) | {r['ms_per_step']:.1f} | "
                     f"{r['steal_ms'][0]:.0f}/{r['steal_ms'][1]:.0f} | "
                     f"{r['idle_ms'][0]:.0f}/{r['idle_ms'][1]:.0f} | {r['placement']} | {ranks} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("traces", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, help="also write the numbers as JSON")
    ap.add_argument("--pack", action="store_true",
                    help="bundle steps_rank*.npy into steps.npz (compressed) and remove them")
    args = ap.parse_args(argv)
    everything = {}
    for trace in args.traces:
        if not (trace / "threads_rank0.json").exists():
            print(f"analyze_step_trace: error: {trace}: no steps_rank*.npy / "
                  "threads_rank0.json (was DTNN_STEP_TRACE set?)", file=sys.stderr)
            return 2
        arrays, meta = load(trace)
        if args.pack and _rank_files(trace):
            np.savez_compressed(trace / "steps.npz",
                                **{f"rank{r}": a for r, a in enumerate(arrays)})
            for p in _rank_files(trace):
                p.unlink()
        recs = summarize(arrays, meta, float(meta.get("clock_ticks", 100)))
        everything[str(trace)] = recs
        print(table(str(trace), recs))
        print()
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
