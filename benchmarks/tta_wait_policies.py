"""Time-to-accuracy runs of one dtnn compressor under several wait policies, in one call.

    python benchmarks/tta_wait_policies.py --out DIR --policy yield --policy sleep:200 \
        [--repeats 2] [--env policy=KEY=VALUE] [--hosts 4 --link 100mbit]

Brings the simulated cluster up (``launch/simcluster.py``, self-test recorded), then runs
``dtnn train`` (the same settings as ``dtnn bench scaling --tta``: simplecnn, 3 epochs,
warm-up 0.2, 4 evaluations per epoch, stop at 89 %) once per policy and repeat, the
policies alternating (A B A B), each rank with ``DTNN_WAIT=<policy>`` and a step trace
(``DTNN_STEP_TRACE``, see ``dtnn.engine.steptrace``).  A policy may carry extra rank
environment: ``--policy nodelay=yield --env nodelay=FI_TCP_NODELAY=1`` (the label before
'=' names the run; the rest is the DTNN_WAIT value).  Results: ``DIR/runs.jsonl`` (one
line per run: time to accuracy, steps, per-stretch ms/step) and ``DIR/<label>_<i>/``
(metrics, trace; ``epoch_end_seconds``: each rank's end-of-epoch sections).  Labels may
also differ in training settings: ``--policy gathered=sleep:100 --policy sharded=sleep:100
--set gathered=output.checkpoint_shards=false``.  Run it under ``/work/bin/quiet``
holding the cluster's lock.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtnn.bench.scaling import Cluster, run_job  # noqa: E402
from dtnn.io.jsonl import JsonlWriter  # noqa: E402

TTA_SETTINGS = ["train.epochs=3", "schedule.warmup_epochs=0.2", "train.threads=1",
                "output.progress=false", "train.target_accuracy=0.89",
                "train.stop_at_target=true", "train.evals_per_epoch=4"]


def train_command(compress: str, run_dir: Path, env: dict) -> list:
    genv = []
    for key, value in env.items():
        genv += ["-genv", key, value]
    cmd = [sys.executable, "-m", "dtnn", "train", "-c", str(ROOT / "configs" / "simplecnn.toml")]
    for item in TTA_SETTINGS:
        cmd += ["--set", item]
    return genv, cmd + ["--compress", compress, "--run-dir", str(run_dir)]


def stretch_ms(metrics: list) -> list:
    evals = [m for m in metrics if m.get("event") == "eval"]
    out, prev_t, prev_s = [], 0.0, 0
    for m in evals:
        out.append(round(1e3 * (m["train_seconds"] - prev_t) / max(1, m["step"] - prev_s), 2))
        prev_t, prev_s = m["train_seconds"], m["step"]
    return out


def epoch_end_seconds(trace: Path) -> dict:
    """Each rank's end-of-epoch sections (seconds), from its trace's threads json."""
    out = {}
    for path in sorted(trace.glob("threads_rank*.json")):
        meta = json.loads(path.read_text())
        out[f"rank{meta['rank']}"] = [round(x, 4) for x in meta.get("epoch_end_seconds", [])]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--policy", action="append", required=True,
                    help="DTNN_WAIT value, or LABEL=VALUE")
    ap.add_argument("--env", action="append", default=[], help="LABEL=KEY=VALUE")
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="LABEL=KEY=VALUE: a `dtnn train --set KEY=VALUE` for that label's runs")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--compress", default="randomk:ratio=0.01")
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--link", default="100mbit")
    ap.add_argument("--timeout", type=float, default=240)
    ap.add_argument("--keep-up", action="store_true", help="leave the cluster up")
    args = ap.parse_args(argv)
    policies = []
    for p in args.policy:
        label, _, value = p.partition("=") if "=" in p else (p, "", p)
        policies.append((label.replace(":", ""), value or label))
    extra = {}
    for e in args.env:
        label, key, value = e.split("=", 2)
        extra.setdefault(label, {})[key] = value
    sets = {}
    for e in args.sets:
        label, item = e.split("=", 1)
        sets.setdefault(label, []).append(item)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    rec = JsonlWriter(out / "runs.jsonl")
    cluster = Cluster(ROOT)
    try:
        test = cluster.prepare(args.hosts, args.link)
        rec.write(dict(test, time=time.strftime("%H:%M:%S", time.gmtime())))
        print("selftest:", *test.get("lines", []), flush=True)
        for i in range(args.repeats):
            for label, value in policies:
                run_dir = out / f"{label}_{i}"
                env = {"DTNN_WAIT": value, "DTNN_STEP_TRACE": str(run_dir / "trace"),
                       **extra.get(label, {})}
                genv, cmd = train_command(args.compress, run_dir, env)
                for item in sets.get(label, []):
                    cmd += ["--set", item]
                argv_ = cluster.argv(args.hosts, cmd)
                split = argv_.index("-n")   # mpiexec options before the rank count
                argv_ = argv_[:split] + genv + argv_[split:]
                t0 = time.time()
                stamp = time.strftime("%H:%M:%S", time.gmtime())
                error = run_job(argv_, args.timeout)
                metrics = []
                mpath = run_dir / "metrics.jsonl"
                if mpath.exists():
                    metrics = [json.loads(line) for line in mpath.read_text().splitlines()
                               if line.strip()]
                hit = next((m for m in metrics if m.get("event") == "eval"
                            and m.get("time_to_accuracy") is not None), None)
                row = {"kind": "run", "label": label, "policy": value, "env": env,
                       "repeat": i, "time": stamp, "job_seconds": round(time.time() - t0, 1),
                       "error": error, "time_to_accuracy": hit and hit["time_to_accuracy"],
                       "step": hit and hit["step"], "stretch_ms": stretch_ms(metrics),
                       "sets": sets.get(label, []),
                       "epoch_end_seconds": epoch_end_seconds(run_dir / "trace")}
                rec.write(row)
                print(json.dumps({k: row[k] for k in ("label", "time", "time_to_accuracy",
                                                      "step", "stretch_ms",
                                                      "epoch_end_seconds", "error")}),
                      flush=True)
    finally:
        if not args.keep_up:
            cluster.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
