"""The recipe campaign of benchmarks/results/recipes.md: many short `dtnn train` /
`dtnn lr-find` runs, one result line each, resumable.

    python benchmarks/recipes_data.py --out /tmp/dtnn-recipes          # the npz datasets
    python benchmarks/recipes_campaign.py --plan seeds --out benchmarks/results/recipes.jsonl
    python benchmarks/recipes_campaign.py --plan seeds --only fmnist8k --dry-run

Every run is a separate process started through ``--wrap`` (default ``/work/bin/busy``,
the shared-CPU lock of the dev machine; ``--wrap ""`` runs directly).  A run whose
``name`` already has a line in ``--out`` is skipped, so an interrupted campaign is
resumed by starting it again.  Each line: the run's name, plan, dataset, seed, command,
wall seconds, per-epoch train loss, final test accuracy, and the CPU it ran on.

Plans:
  probe   2-epoch runs on fmnist8k, 5 seeds, He init (the old default) vs torch init
  seeds   configs/simplecnn.toml at 12 epochs, 5 seeds, on fmnist, fmnist8k, digits28
  sweep   the same at seed 0 with optim.lr in {0.003, 0.01, 0.03, 0.1, 0.3}
          (0.05, the config's value, comes from the seeds plan)
  defaults  no config file at all (10 epochs), seeds 0-2
  lrfind  `dtnn lr-find --fraction F` on each dataset, then 12 epochs at the suggested
          lr (seed 0)
  main    the 20-epoch main job, 1 and 4 processes, twice
  main-noavx512  the same without AVX-512 on this AVX-512 CPU: dtnn's kernels capped at
          their AVX2 path (DTNN_ISA=avx2) and OpenBLAS on its Haswell kernels
          (OPENBLAS_CORETYPE=Haswell)

On a shared machine a long run should not hold the CPU lock for an hour:
``--chunk-minutes M`` checkpoints every epoch and, after about M minutes, stops the run
at the end of an epoch and continues it with ``dtnn train --resume`` in a new call of
the wrapper (exact resume: the same losses as one uninterrupted call); the line records
the number of calls.  ``--match`` picks runs by name (one driver per run).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(ROOT, ".venv", "bin")
CONFIG = os.path.join(ROOT, "configs", "simplecnn.toml")
SEEDS = (0, 1, 2, 3, 4)
SWEEP = (0.003, 0.01, 0.03, 0.1, 0.3)
# no AVX-512 on an AVX-512 CPU: dtnn's kernels capped at their AVX2 path, and OpenBLAS
# (numpy's GEMM) made to pick its Haswell (AVX2) kernels instead of SkylakeX
NO_AVX512_ENV = {"DTNN_ISA": "avx2", "OPENBLAS_CORETYPE": "Haswell"}


def datasets(data_dir: str) -> Dict[str, List[str]]:
    return {
        "fmnist": [],
        "fmnist8k": ['data.source="npz"', f'data.path="{data_dir}/fmnist8k.npz"'],
        "digits28": ['data.source="npz"', f'data.path="{data_dir}/digits28.npz"'],
    }


def cpu_name() -> str:
    """The CPU model and whether it has AVX-512 (the fused path changes summation order)."""
    from dtnn._kernels import isa
    return isa.cpu_model() + (" (AVX-512)" if isa.cpu() == "avx512" else " (no AVX-512)")


def git_commit() -> str:
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def train_cmd(sets: List[str], run_dir: str, procs: int = 1) -> List[str]:
    cmd = [os.path.join(VENV, "dtnn"), "train", "-c", CONFIG, "--run-dir", run_dir,
           "--set", "output.progress=false", "--set", "output.checkpoint_every=0"]
    for s in sets:
        cmd += ["--set", s]
    if procs > 1:
        cmd = [os.path.join(VENV, "mpiexec"), "-n", str(procs)] + cmd
    return cmd


def plan_runs(plan: str, data_dir: str, scratch: str, only: List[str],
              fraction: float = 1.0) -> List[dict]:
    runs = []
    sets = datasets(data_dir)
    pick = [d for d in sets if not only or d in only]
    if plan == "probe":
        for init in ("he", "torch"):
            for seed in SEEDS:
                name = f"probe/fmnist8k/init={init}/seed={seed}"
                s = sets["fmnist8k"] + [f"train.seed={seed}", "train.epochs=2",
                                        f'model.options.init="{init}"']
                runs.append(dict(name=name, dataset="fmnist8k", seed=seed,
                                 cmd=train_cmd(s, f"{scratch}/{name}")))
    elif plan == "seeds":
        for d in pick:
            for seed in SEEDS:
                name = f"seeds/{d}/seed={seed}"
                s = sets[d] + [f"train.seed={seed}", "train.epochs=12"]
                runs.append(dict(name=name, dataset=d, seed=seed,
                                 cmd=train_cmd(s, f"{scratch}/{name}")))
    elif plan == "sweep":
        for d in pick:
            for lr in SWEEP:
                name = f"sweep/{d}/lr={lr:g}"
                s = sets[d] + ["train.seed=0", "train.epochs=12", f"optim.lr={lr}"]
                runs.append(dict(name=name, dataset=d, seed=0, lr=lr,
                                 cmd=train_cmd(s, f"{scratch}/{name}")))
    elif plan == "lrfind":
        for d in pick:
            # (lines named lrfind/{d} without a fraction: the first rule, 1/10)
            name = f"lrfind/{d}/fraction={fraction:g}"
            cfg_out = f"{scratch}/{name}/config.toml"
            cmd = [os.path.join(VENV, "dtnn"), "lr-find", "-c", CONFIG, "--out",
                   f"{scratch}/{name}", "--write-config", cfg_out, "--set", "train.seed=0",
                   "--fraction", f"{fraction:g}"]
            for s in sets[d] + ["train.epochs=12"]:
                cmd += ["--set", s]
            runs.append(dict(name=name, dataset=d, seed=0, cmd=cmd, kind="lr-find",
                             result=f"{scratch}/{name}/lr_find.json"))
            tname = f"lrfind-train/{d}/fraction={fraction:g}"
            runs.append(dict(name=tname, dataset=d, seed=0, after=name,
                             cmd=[os.path.join(VENV, "dtnn"), "train", "-c", cfg_out,
                                  "--run-dir", f"{scratch}/{tname}", "--set",
                                  "output.progress=false", "--set",
                                  "output.checkpoint_every=0"]))
    elif plan == "defaults":
        for d in pick:
            for seed in (0, 1, 2):
                name = f"defaults/{d}/seed={seed}"
                cmd = train_cmd(sets[d] + [f"train.seed={seed}"], f"{scratch}/{name}")
                cmd.remove("-c")
                cmd.remove(CONFIG)
                runs.append(dict(name=name, dataset=d, seed=seed, cmd=cmd))
    elif plan in ("main", "main-noavx512"):
        for rep in (1, 2):
            for procs in (1, 4):
                name = f"{plan}/n={procs}/rep={rep}"
                runs.append(dict(name=name, dataset="fmnist", seed=0, procs=procs,
                                 cmd=train_cmd([], f"{scratch}/{name}", procs),
                                 env=NO_AVX512_ENV if plan == "main-noavx512" else {}))
    else:
        raise SystemExit(f"unknown plan {plan!r}")
    return runs


def epochs_done(run_dir: str) -> int:
    try:
        with open(os.path.join(run_dir, "metrics.jsonl")) as fh:
            return sum('"train_loss"' in line for line in fh)
    except OSError:
        return 0


def configured_epochs(run_dir: str) -> int:
    try:
        with open(os.path.join(run_dir, "config.toml")) as fh:
            for line in fh:
                if line.startswith("epochs = "):
                    return int(line.split("=", 1)[1])
    except (OSError, ValueError):
        pass
    return 0


def run_chunked(wrap: List[str], cmd: List[str], env: dict, chunk_seconds: float,
                log_path: str):
    """Run a `dtnn train` command as a series of shorter calls of ``wrap`` (the shared
    CPU lock must be released now and then): once ``chunk_seconds`` have passed, wait
    for the next epoch to end (its record comes after its checkpoint), interrupt the
    run with SIGINT and continue it with ``--resume`` (exact resume) in a new call.
    Without ``chunk_seconds`` the command runs once.  Returns (status, stderr, chunks)."""
    run_dir = cmd[cmd.index("--run-dir") + 1] if "--run-dir" in cmd else ""
    chunk_seconds = chunk_seconds if run_dir else 0
    procs = cmd[cmd.index("-n") + 1] if "-n" in cmd and "mpiexec" in cmd[0] else None
    resume = ([os.path.join(VENV, "mpiexec"), "-n", procs] if procs else []) + [
        os.path.join(VENV, "dtnn"), "train", "--resume",
        os.path.join(run_dir, "checkpoint.h5"), "--set", "output.progress=false"]
    chunks = 0
    while True:
        chunks += 1
        with open(log_path, "w") as err:
            proc = subprocess.Popen(wrap + cmd, env=env, stdout=subprocess.DEVNULL,
                                    stderr=err, start_new_session=True)
            t0, mark, stopped = time.time(), None, False
            while proc.poll() is None:
                time.sleep(5)
                if not chunk_seconds or stopped or time.time() - t0 < chunk_seconds:
                    continue
                done = epochs_done(run_dir)
                if mark is None:
                    mark = done
                elif done > mark and done < configured_epochs(run_dir):
                    os.killpg(proc.pid, signal.SIGINT)
                    stopped = True
            status = proc.wait()
        with open(log_path) as fh:
            stderr = fh.read()
        if not (stopped and status != 0 and os.path.exists(resume[-3])):
            return status, stderr, chunks
        print(f"  chunk {chunks} ended after epoch {epochs_done(run_dir)}; resuming",
              flush=True)
        cmd = resume


def done_names(path: str) -> set:
    if not os.path.exists(path):
        return set()
    with open(path) as fh:
        return {json.loads(line)["name"] for line in fh if line.strip()}


def collect(run: dict) -> dict:
    if run.get("kind") == "lr-find":
        with open(run["result"]) as fh:
            found = json.load(fh)
        return {"suggested_lr": found.get("suggested_lr"), "lr_find": {
            k: found[k] for k in ("steps", "min_loss_lr", "suggested_lr", "diverged_at_lr")
            if k in found}}
    run_dir = run["cmd"][run["cmd"].index("--run-dir") + 1]
    with open(os.path.join(run_dir, "metrics.jsonl")) as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    epochs = [r for r in records if "train_loss" in r]
    out = {"train_loss": [round(r["train_loss"], 4) for r in epochs],
           "eval_accuracy": [r.get("eval_accuracy") for r in epochs],
           "lr_epoch1_end": epochs[0]["lr"] if epochs else None}
    report = os.path.join(run_dir, "report.json")
    if os.path.exists(report):
        with open(report) as fh:
            out["test_accuracy"] = json.load(fh)["accuracy"]
    with open(os.path.join(run_dir, "config.toml")) as fh:
        for line in fh:
            if line.startswith("lr = "):
                out["config_lr"] = float(line.split("=", 1)[1])
                break
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plan", required=True)
    p.add_argument("--out", required=True, help="JSON-lines results file (appended)")
    p.add_argument("--data", default="/tmp/dtnn-recipes", help="recipes_data.py --out dir")
    p.add_argument("--scratch", default="/tmp/dtnn-recipes/runs", help="run directories")
    p.add_argument("--only", nargs="*", default=[], help="datasets to run")
    p.add_argument("--fraction", type=float, default=1.0,
                   help="plan lrfind: dtnn lr-find --fraction (the suggestion rule)")
    p.add_argument("--match", default="", help="only runs whose name contains this")
    p.add_argument("--max-runs", type=int, default=0, help="stop after this many runs")
    p.add_argument("--wrap", default="/work/bin/busy", help="command prefix for each run")
    p.add_argument("--chunk-minutes", type=float, default=0,
                   help="split each training run into calls of --wrap of about this many "
                   "minutes (checkpoint every epoch, stop at an epoch end, --resume); "
                   "0 = one call per run")
    p.add_argument("--set", dest="extra_sets", action="append", default=[],
                   help="extra `--set KEY=VALUE` for every dtnn command (e.g. train.threads=1 "
                   "when two runs share the 2 cores); recorded in the result line's command")
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args()
    runs = plan_runs(args.plan, args.data, args.scratch, args.only, args.fraction)
    done = done_names(args.out)
    started = 0
    for run in runs:
        if args.match not in run["name"]:
            continue
        if run["name"] in done or run["name"] in done_names(args.out):  # another driver
            continue
        if run.get("after") and run["after"] not in done_names(args.out):
            print(f"skip {run['name']}: needs {run['after']}")
            continue
        if args.max_runs and started >= args.max_runs:
            break
        for extra in args.extra_sets:
            run["cmd"] += ["--set", extra]
        if args.chunk_minutes and "--run-dir" in run["cmd"]:
            run["cmd"] = [("output.checkpoint_every=1" if c == "output.checkpoint_every=0"
                           else c) for c in run["cmd"]]
        print("$ " + " ".join(shlex.quote(c) for c in run["cmd"]), flush=True)
        if args.dry_run:
            continue
        started += 1
        env = dict(os.environ, **run.get("env", {}))
        t0 = time.time()
        os.makedirs(args.scratch, exist_ok=True)
        status, stderr, chunks = run_chunked(
            shlex.split(args.wrap), run["cmd"], env, args.chunk_minutes * 60,
            os.path.join(args.scratch, run["name"].replace("/", "_") + ".log"))
        seconds = time.time() - t0
        line = {k: v for k, v in run.items() if k not in ("cmd", "result", "env", "after")}
        line.update(plan=args.plan, command=" ".join(shlex.quote(c) for c in run["cmd"]),
                    env=run.get("env", {}), status=status,
                    seconds=round(seconds, 1), cpu=cpu_name(), commit=git_commit())
        if chunks > 1:
            line["calls"] = chunks   # resumed from its checkpoint chunks - 1 times
        if status == 0:
            line.update(collect(run))
        else:
            line["error"] = (stderr.strip().splitlines() or ["?"])[-1][:300]
        with open(args.out, "a") as fh:
            fh.write(json.dumps(line) + "\n")
        print(json.dumps({k: line.get(k) for k in ("name", "status", "seconds",
                                                   "test_accuracy", "suggested_lr")}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
