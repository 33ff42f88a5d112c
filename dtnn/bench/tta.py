"""Time-to-accuracy on the simulated cluster: ``dtnn bench scaling --tta``.

One full training run per dtnn compressor (``dtnn train --compress SPEC``) and per DDP
mode (``benchmarks/ddp_peer.py --mode M``), all with the same config (model, data,
global batch, optimizer, schedule, seed), the same evaluation points
(``evals_per_epoch`` per epoch) and ``stop_at_target``.  The time compared is
``time_to_accuracy``: training seconds (evaluation excluded) until the first
evaluation at or above the target test accuracy.  Summaries go to ``OUT/tta.jsonl``,
each run's metrics to ``OUT/tta/<framework>-<name>/``.
"""
from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from dtnn.bench.scaling import (Cluster, Recorder, machine_note, prepare_cell, read_records,
                                repo_root, run_job)


@dataclass
class TtaPlan:
    out: Path
    config: str
    overrides: List[str] = field(default_factory=list)
    hosts: int = 4
    link: str = "100mbit"
    target: float = 0.89
    evals_per_epoch: int = 4
    compress: List[str] = field(default_factory=lambda: ["none", "topk:ratio=0.01"])
    ddp: List[str] = field(default_factory=lambda: ["none", "fp16", "powersgd"])
    timeout: float = 3600.0
    fresh: bool = False


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=]+", "_", text).strip("_")


def summarize(lines: List[Dict[str, Any]], base: Dict[str, Any]) -> Dict[str, Any]:
    """The summary record of one run from its metrics lines."""
    evals = [r for r in lines if r.get("event") == "eval"]
    epochs = [r for r in lines if r.get("event") != "eval"]
    reached = next((r for r in evals if r.get("time_to_accuracy") is not None), None)
    last = epochs[-1] if epochs else {}
    steps = max((r.get("step", 0) for r in lines), default=0)
    train_s = (evals[-1]["train_seconds"] if evals else last.get("train_seconds")) or 0.0
    out = dict(base, kind="tta", evaluations=len(evals), steps=steps,
               time_to_accuracy=reached["time_to_accuracy"] if reached else None,
               time_to_accuracy_wall=reached.get("time_to_accuracy_wall") if reached else None,
               reached_at_step=reached["step"] if reached else None,
               reached_at_epoch=reached.get("epoch_progress") if reached else None,
               final_eval_accuracy=evals[-1]["eval_accuracy"] if evals else None,
               step_seconds=train_s / steps if steps else None,
               curve=[[round(r["train_seconds"], 3), r["eval_accuracy"], r["step"]]
                      for r in evals])
    exchange = last.get("exchange") or {}
    if isinstance(exchange, dict) and "sent_bytes" in exchange:
        out["sent_bytes"] = exchange["sent_bytes"]
    return out


def dtnn_run(plan: TtaPlan, spec: str, run_dir: Path) -> List[str]:
    cmd = [sys.executable, "-m", "dtnn", "train", "-c", plan.config]
    for item in plan.overrides + [
            "train.threads=1", "output.progress=false", f"train.target_accuracy={plan.target}",
            "train.stop_at_target=true", f"train.evals_per_epoch={plan.evals_per_epoch}"]:
        cmd += ["--set", item]
    return cmd + ["--compress", spec, "--run-dir", str(run_dir)]


def ddp_run(plan: TtaPlan, root: Path, mode: str, out: Path) -> List[str]:
    cmd = [sys.executable, str(root / "benchmarks" / "ddp_peer.py"), "-c", plan.config,
           "--mode", mode, "--threads", "1", "--target-accuracy", str(plan.target),
           "--stop-at-target", "--evals-per-epoch", str(plan.evals_per_epoch),
           "--out", str(out)]
    for item in plan.overrides:
        cmd += ["--set", item]
    return cmd


def run_tta(plan: TtaPlan, log=print) -> int:
    root = repo_root()
    rec = Recorder(plan.out / "tta.jsonl")
    cluster = Cluster(root)
    failures = 0
    jobs = [("dtnn", s) for s in plan.compress] + [("torch-ddp", m) for m in plan.ddp]
    base_cell = {"hosts": plan.hosts, "link": plan.link, "target": plan.target,
                 "config": plan.config, "overrides": plan.overrides,
                 "evals_per_epoch": plan.evals_per_epoch}
    try:
        prepared = False
        for framework, name in jobs:
            if not plan.fresh and rec.done(kind="tta", framework=framework, name=name,
                                           hosts=plan.hosts, link=plan.link,
                                           target=plan.target):
                continue
            if not prepared:
                prepare_cell(cluster, rec, plan.hosts, plan.link, log)
                prepared = True
            failures += _one_run(plan, root, cluster, rec, framework, name, base_cell, log)
    finally:
        cluster.down()
    return 1 if failures else 0


def run_tta_job(cluster, hosts: int, cmd: List[str], timeout: float, metrics: Path,
                base: Dict[str, Any], rec: Recorder,
                log) -> Tuple[Optional[Dict[str, Any]], float]:
    """Run one time-to-accuracy job on the cluster and summarise its metrics file.
    Returns (summary, job seconds); a failed job (an error, or no metrics written) is
    recorded as a ``tta-error`` line and gives (None, seconds).  The caller records the
    summary (bench scaling and the torch bridge benchmark add different fields)."""
    t0 = time.time()
    error = run_job(cluster.argv(hosts, cmd), timeout)
    seconds = time.time() - t0
    lines = read_records(metrics)
    if error or not lines:
        log(f"    FAILED: {error or 'no metrics written'}")
        rec.write(dict(base, kind="tta-error", error=error or "no metrics written"))
        return None, seconds
    return summarize(lines, base), seconds


def _one_run(plan, root, cluster, rec, framework, name, base_cell, log) -> int:
    run_dir = plan.out / "tta" / f"{framework}-{slug(name)}-{plan.hosts}x{slug(plan.link)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        metrics.unlink()
    cmd = (dtnn_run(plan, name, run_dir) if framework == "dtnn"
           else ddp_run(plan, root, name, metrics))
    log(f"  time-to-accuracy: {framework} {name} on {plan.hosts} host(s) over {plan.link}")
    base = dict(base_cell, framework=framework, name=name, command=cmd, **machine_note())
    summary, seconds = run_tta_job(cluster, plan.hosts, cmd, plan.timeout, metrics, base,
                                   rec, log)
    (run_dir / "job_seconds.txt").write_text(f"{seconds:.1f}\n")
    if summary is None:
        return 1
    rec.write(summary)
    tta = summary["time_to_accuracy"]
    log(f"    {'reached' if tta is not None else 'did not reach'} {plan.target:.3f}"
        + (f" after {tta:.1f} s of training (step {summary['reached_at_step']})"
           if tta is not None else f"; final {summary['final_eval_accuracy']}"))
    return 0
