"""Tables for the end-of-epoch and guard-step costs of ``tta_wait_policies.py`` runs.

    python benchmarks/tta_epoch_end_report.py DIR [DIR ...]

For every run in ``DIR/runs.jsonl`` (label, time to accuracy, step): each rank's
end-of-epoch sections in seconds (``epoch_end_seconds`` of its trace: the epoch record,
checkpoint and metrics line, all inside ``train_seconds``) and, from the per-step
trace, the steps that hold the divergence guard's allreduce (every 25th step's sums
are reduced after it, so the row of step 25k+1 holds it) against the other steps:
median wall time and main-thread CPU per step, averaged over the ranks.  Rows after
an evaluation are left out.  A directory may also be a run's trace directory alone.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtnn.engine.steptrace import FIELDS  # noqa: E402

COL = {name: i for i, name in enumerate(FIELDS)}
WINDOW = 25   # DivergenceGuard's default window (train.divergence_loss on)


def load_ranks(trace: Path) -> dict:
    packed = trace / "steps.npz"
    if packed.exists():
        z = np.load(packed)
        return {k: z[k] for k in z.files}
    return {p.stem.split("_")[1]: np.load(p) for p in sorted(trace.glob("steps_rank*.npy"))}


def guard_steps(trace: Path) -> dict:
    """Median ms per step and CPU ms per step, guard rows vs the others."""
    out = {"guard_ms": [], "other_ms": [], "guard_cpu": [], "other_cpu": []}
    for rows in load_ranks(trace).values():
        dt = np.diff(rows[:, COL["t_end"]]) * 1e3
        cpu = np.diff(rows[:, COL["thread_cpu"]]) * 1e3
        step = np.arange(2, len(rows) + 1)
        clean = rows[1:, COL["eval_before"]] == 0
        guard = clean & (step % WINDOW == 1)
        other = clean & (step % WINDOW > 1)    # (the step before the guard's is off too)
        out["guard_ms"].append(np.median(dt[guard]))
        out["other_ms"].append(np.median(dt[other]))
        out["guard_cpu"].append(np.median(cpu[guard]))
        out["other_cpu"].append(np.median(cpu[other]))
    return {k: round(float(np.mean(v)), 2) for k, v in out.items() if v}


def epoch_ends(trace: Path) -> dict:
    ends = {}
    for path in sorted(trace.glob("threads_rank*.json")):
        meta = json.loads(path.read_text())
        ends[meta["rank"]] = [round(1e3 * s) for s in meta.get("epoch_end_seconds", [])]
    return ends


def main(argv=None) -> int:
    dirs = [Path(a) for a in (argv if argv is not None else sys.argv[1:])]
    print("| run | time to 89 % (s) | step | end of epoch 1, ms (rank 0 / 1 / 2 / 3) "
          "| guard step ms / other | guard step CPU ms / other |")
    print("|---|---|---|---|---|---|")
    for d in dirs:
        runs = []
        if (d / "runs.jsonl").exists():
            for line in (d / "runs.jsonl").read_text().splitlines():
                r = json.loads(line)
                if r.get("kind") == "run":
                    runs.append((f"{r['label']} ({r['time']})", d / f"{r['label']}_{r['repeat']}"
                                 / "trace", r.get("time_to_accuracy"), r.get("step")))
        else:
            runs.append((d.name, d, None, None))
        for label, trace, tta, step in runs:
            if not trace.exists():
                continue
            ends = epoch_ends(trace)
            first = " / ".join(str(v[0]) if v else "-" for _, v in sorted(ends.items()))
            g = guard_steps(trace)
            tta_s = f"{tta:.1f}" if tta is not None else "-"
            print(f"| {label} | {tta_s} | {step or '-'} | {first} | "
                  f"{g.get('guard_ms', '-')} / {g.get('other_ms', '-')} | "
                  f"{g.get('guard_cpu', '-')} / {g.get('other_cpu', '-')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
