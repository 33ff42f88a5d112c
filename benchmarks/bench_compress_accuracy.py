#!/usr/bin/env python
"""Accuracy and bytes of every gradient compressor: simplecnn on Fashion-MNIST,
N ranks, the same epochs/schedule/global batch for all (incl. ``none``).

    nohup python benchmarks/bench_compress_accuracy.py --ranks 4 --epochs 3 \
        > /tmp/compress_accuracy.log 2>&1 &

Each compressor is one ``mpiexec -n N python -m dtnn train ... --compress SPEC`` run
(one thread per rank), one after the other.  After every run the table is rewritten
(``benchmarks/results/compress_accuracy_<tag>.md`` + ``.json``), so a partial sweep still
leaves the finished rows.  Per-step times and bytes come from the reducer's
``stats()`` that ``dtnn train`` writes into metrics.jsonl (means over the run).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")

SPECS = ["none", "fp16", "int8", "qsgd:bits=8", "topk:ratio=0.01", "powersgd:rank=2",
         "sign", "terngrad", "bf16", "randomk:ratio=0.01"]


def mpiexec() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else "mpiexec"


def run(spec: str, args) -> dict:
    """``spec`` is a --compress spec, optionally followed by ``|key=value`` config
    overrides for this run only (e.g. ``sign|dist.compress_warmup_steps=150``)."""
    spec, *extra = spec.split("|")
    tag = (spec + "".join("_" + e for e in extra)).replace(":", "_").replace(",", "_")
    tag = tag.replace("=", "").replace("dist.", "")
    run_dir = os.path.join(args.run_root, f"seed{args.seed}", tag)
    cmd = [mpiexec(), "-n", str(args.ranks), sys.executable, "-m", "dtnn", "train",
           "--config", "configs/simplecnn.toml",
           "--set", f"train.epochs={args.epochs}",
           "--set", f"train.global_batch_size={args.global_batch}",
           "--set", "train.threads=1", "--set", "output.progress=false",
           "--set", "output.checkpoint_every=0", "--set", f"train.seed={args.seed}",
           "--run-dir", run_dir, "--compress", spec]
    for e in list(args.set) + extra:
        cmd += ["--set", e]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
    line = " ".join(shlex.quote(c) for c in cmd)
    print(f"$ {line}", flush=True)
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=args.timeout)
    wall = time.time() - t0
    row = {"spec": "|".join([spec, *extra]), "command": line, "status": proc.returncode, "wall_seconds": wall}
    if proc.returncode != 0:
        return row
    with open(os.path.join(run_dir, "report.json")) as fh:
        report = json.load(fh)
    with open(os.path.join(run_dir, "metrics.jsonl")) as fh:
        records = [r for r in (json.loads(x) for x in fh if x.strip())
                   if r.get("event") != "eval"]
    ex = records[-1].get("exchange", {})
    row.update(test_accuracy=report["accuracy"],
               train_loss=records[-1]["train_loss"],
               epochs=[r.get("eval_accuracy") for r in records],
               sent_bytes=ex.get("sent_bytes"), fp32_bytes=ex.get("payload_bytes"),
               ratio=ex.get("compression_ratio"), step_ms=1e3 * (ex.get("step_seconds") or 0),
               compute_ms=1e3 * (ex.get("compute_seconds") or 0),
               codec_ms=1e3 * (ex.get("codec_seconds") or 0),
               comm_ms=1e3 * ((ex.get("exposed_comm_seconds") or 0)
                              + (ex.get("hook_mpi_seconds") or 0)))
    return row


def write(rows, args) -> None:
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, f"compress_accuracy_{args.tag}.json"), "w") as fh:
        json.dump({"ranks": args.ranks, "epochs": args.epochs, "seed": args.seed,
                   "overrides": args.set,
                   "global_batch": args.global_batch, "rows": rows}, fh, indent=1)
    base = next((r for r in rows if r["spec"] == "none" and "test_accuracy" in r), None)
    lines = [
        "| compressor | test acc | Δ vs none (pp) | bytes sent / rank / step | ratio | "
        "step ms | compute ms | compress+decode ms | communicate ms |",
        "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "test_accuracy" not in r:
            lines.append(f"| `{r['spec']}` | FAILED (exit {r['status']}) | | | | | | | |")
            continue
        d = (f"{100 * (r['test_accuracy'] - base['test_accuracy']):+.2f}" if base else "")
        lines.append(
            f"| `{r['spec']}` | {100 * r['test_accuracy']:.2f} % | {d} | "
            f"{r['sent_bytes']:,.0f} | {r['ratio']:.1f}x | {r['step_ms']:.1f} | "
            f"{r['compute_ms']:.1f} | {r['codec_ms']:.2f} | {r['comm_ms']:.1f} |")
    with open(os.path.join(RESULTS, f"compress_accuracy_{args.tag}.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ranks", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--global-batch", type=int, default=64)
    p.add_argument("--specs", nargs="+", default=SPECS)
    p.add_argument("--seed", type=int, default=0, help="train.seed (init, data order)")
    p.add_argument("--tag", default="seed0", help="results file suffix")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run (e.g. schedule.warmup_epochs=0.2)")
    p.add_argument("--run-root", default="/tmp/dtnn-compress-runs")
    p.add_argument("--timeout", type=float, default=1800)
    args = p.parse_args(argv)
    rows = []
    for spec in args.specs:
        try:
            rows.append(run(spec, args))
        except subprocess.TimeoutExpired:
            rows.append({"spec": spec, "status": "timeout"})
        write(rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
