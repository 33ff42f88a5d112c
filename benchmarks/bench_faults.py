#!/usr/bin/env python
"""The fault matrix, timed: how each fault ends a small ``dtnn train`` job under
``mpiexec -n N``, and how long the job takes to end after the fault.  Also the CLI's
start-up time for ``--help`` and missing-file errors.

    python benchmarks/bench_faults.py --out benchmarks/results/faults.md
    python benchmarks/bench_faults.py --ranks 2 --repeats 1          # quick look

The cases, the driver and the checks are the test suite's
(``tests/parallel/fault_matrix.py``): a rank plants the fault after step 25 (several
epochs in, so a checkpoint exists) or the harness signals a process once that step is
reached.  "time to end" runs from the fault (the planted raise/exit,
or the signal) to mpiexec's exit.  Every run is checked like in the tests: non-zero
status, expected message, no process left, last checkpoint loadable.
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dtnn.bench.infer import cpu_description  # noqa: E402
from tests.parallel.fault_matrix import CASES, FAULT_STEP, problems, run_case  # noqa: E402


def how(case) -> str:
    if case.signal == "INT-mpiexec":
        return "`kill -INT <mpiexec>` (what Ctrl-C does)"
    if case.signal:
        where = f" while it writes a checkpoint" if case.marker == "saving" else ""
        return f"`kill -{case.signal} <rank {case.target}>`{where}"
    return {"raise": f"rank {case.target} raises RuntimeError",
            "exit0": f"rank {case.target} calls `sys.exit(0)`"}[case.fault]


def startup_rows(repeats: int):
    py = os.path.join(os.path.dirname(sys.executable), "dtnn")
    dtnn = [py] if os.path.exists(py) else [sys.executable, "-m", "dtnn"]
    rows = []
    for args in (["--help"], ["eval", "missing.h5"], ["train", "--config", "missing.toml"],
                 ["predict", "missing.h5", "x.png"], ["info"]):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            subprocess.run(dtnn + args, capture_output=True, cwd=ROOT)
            times.append(time.perf_counter() - t)
        rows.append((" ".join(["dtnn"] + args), statistics.median(times), max(times)))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ranks", type=int, nargs="+", default=[2, 4])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--stall-timeout", type=float, default=3.0)
    p.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "dtnn-faults.md"),
                   help="markdown file to write (default: a scratch file)")
    args = p.parse_args(argv)

    lines = [f"# Fault matrix: how a `dtnn train` job ends", "",
             f"CPU: {cpu_description()}; load average before: "
             f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
             f"{args.repeats} run(s) per cell; `dist.stall_timeout = {args.stall_timeout:g}` s.",
             "", "Command (written by `python benchmarks/bench_faults.py --out "
             "benchmarks/results/faults.md`):", "", "```"]
    cmd = None
    table = ["| fault | ranks | how | exit status | time to end (median, max) | "
             "processes left | last checkpoint | result |", "|---|---|---|---|---|---|---|---|"]
    failures = 0
    for n in args.ranks:
        for case in CASES:
            results = []
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory(prefix="dtnn-fault-") as work:
                    r = run_case(case, work, processes=n, stall_timeout=args.stall_timeout)
                results.append(r)
                cmd = cmd or r.command
            times = [r.seconds_to_end for r in results]
            bad = [q for r in results for q in problems(r)]
            failures += bool(bad)
            statuses = sorted({str(r.status) for r in results})
            epochs = sorted({str(r.checkpoint_epoch) for r in results})
            table.append(f"| {case.name} | {n} | {how(case)} | {', '.join(statuses)} | "
                         f"{statistics.median(times):.2f} s, {max(times):.2f} s | "
                         f"{max(len(r.left) for r in results)} | epoch {', '.join(epochs)}, "
                         f"loadable | {'ok' if not bad else 'FAILED: ' + '; '.join(bad)} |")
            print(table[-1], flush=True)
    shown = [os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd]
    shown = [os.path.basename(c) if c == sys.executable else c for c in shown]
    lines.append(" ".join(shlex.quote(c) for c in shown).replace(
        tempfile.gettempdir(), "$TMP"))
    lines += ["```", "",
              f"(`FAULT RANK {FAULT_STEP}` are set per row; the harness sends the signal "
              "once the target rank has passed that step.)", "", *table, "",
              "How the times arise: every abort by dtnn waits 0.2 s after printing its "
              "one line so that the launcher forwards it before tearing the job down; a "
              "SIGINT/SIGTERM seen by a rank other than 0 waits 0.5 s more (a Ctrl-C "
              "reaches every rank: rank 0 reports it once). A stopped rank is found at "
              f"`dist.stall_timeout` ({args.stall_timeout:g} s here, 300 s by default) plus "
              "the time the waiting rank gives the others to say where they are (half the "
              "timeout, 1 to 3 s): the stopped one never answers and is named. SIGKILL is "
              "noticed by hydra itself (status 9). \"processes left\" counts processes "
              "of the job still alive 5 s after mpiexec exited (zombies awaiting the "
              "launcher's reaping are not alive); \"last checkpoint\" is loaded and "
              "digest-checked after every run.", ""]
    lines += ["## Start-up", "", "| command | median | max |", "|---|---|---|"]
    for name, med, worst in startup_rows(max(3, args.repeats)):
        lines.append(f"| `{name}` | {med:.3f} s | {worst:.3f} s |")
    lines.append("")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write("\n".join(lines))
    print(f"written {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
