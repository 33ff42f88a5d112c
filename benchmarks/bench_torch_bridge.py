"""dtnn.torch vs PyTorch DDP (gloo) on the simulated cluster: throughput and time to accuracy.

Root only (``launch/simcluster.sh``).  Results are JSON lines under ``--out`` (default a
scratch directory, never the committed results), appended as they are measured; a
rerun skips what is recorded (``--fresh`` redoes it).  Keep each call short (the CPU
and the cluster are shared): one link, or one time-to-accuracy run, per call.

Throughput (``benchmarks/torch_bridge_peer.py --bench`` per cell: DDP no_sync / no hook
/ fp16 hook / PowerSGD hook and dtnn.torch no_sync / uncompressed / every compressor,
one job, the same ranks and weights, one thread per rank)::

    python benchmarks/bench_torch_bridge.py --links shm --hosts 1 2 4 --out DIR
    python benchmarks/bench_torch_bridge.py --links 100mbit --hosts 2 4 --out DIR

Time to accuracy (full schedule, evaluated ``--evals-per-epoch`` times per epoch; the
final accuracy is the last evaluation)::

    python benchmarks/bench_torch_bridge.py --tta --run dtnn:topk:ratio=0.01 --out DIR \\
        -c configs/simplecnn.toml --set train.epochs=3 --target 0.89
    python benchmarks/bench_torch_bridge.py --tta --run ddp:powersgd ...

Tables (Markdown, to stdout)::

    python benchmarks/bench_torch_bridge.py --report --out DIR
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "benchmarks"))

from dtnn.bench.scaling import (Cluster, Recorder, cells, machine_note,  # noqa: E402
                                model_config, parse_model, prepare_cell, run_json)
from dtnn.bench.tta import run_tta_job, slug  # noqa: E402

COMPRESS = ["none", "fp16", "bf16", "int8", "qsgd:bits=8", "terngrad", "sign",
            "topk:ratio=0.01", "randomk:ratio=0.01", "powersgd:rank=2"]
DDP = ["nosync", "none", "fp16", "powersgd"]
PEER = ROOT / "benchmarks" / "torch_bridge_peer.py"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "dtnn-torch-bridge"))
    ap.add_argument("--models", nargs="+", default=["vgg11_bn:width=0.5", "simplecnn"])
    ap.add_argument("--hosts", nargs="+", type=int, default=[1, 2, 4])
    ap.add_argument("--links", nargs="+", default=["shm", "100mbit", "1gbit"])
    ap.add_argument("--compress", nargs="+", default=COMPRESS, metavar="SPEC")
    ap.add_argument("--ddp", nargs="*", default=DDP)
    ap.add_argument("--no-nosync", dest="nosync", action="store_false",
                    help="skip dtnn.torch's no_sync row")
    ap.add_argument("--batch", type=int, default=32, help="samples per rank per step")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per row and round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per cell")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--bucket-mb", type=float, default=None, help="dtnn.torch bucket size")
    ap.add_argument("--timeout", type=float, default=1500.0)
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--report", action="store_true", help="print the tables and stop")
    t = ap.add_argument_group("time to accuracy")
    t.add_argument("--tta", action="store_true")
    t.add_argument("--run", action="append", default=[], metavar="dtnn:SPEC|ddp:MODE")
    t.add_argument("-c", "--config", default=str(ROOT / "configs" / "simplecnn.toml"))
    t.add_argument("--set", dest="overrides", action="append", default=[])
    t.add_argument("--target", type=float, default=0.89)
    t.add_argument("--evals-per-epoch", type=int, default=4)
    t.add_argument("--tta-hosts", type=int, default=4)
    t.add_argument("--tta-link", default="100mbit")
    args = ap.parse_args(argv)
    for run in args.run:
        kind, _, name = run.partition(":")
        if kind not in ("dtnn", "ddp") or not name:
            ap.error(f"--run: expected dtnn:SPEC or ddp:MODE, got {run!r}")
    if args.tta and not args.run:
        ap.error("--tta needs at least one --run")
    args.out = Path(args.out)
    return args


def log(msg):
    print(msg, flush=True)


# ------------------------------------------------------------------- throughput
def throughput(args) -> int:
    out = Path(args.out)
    rec = Recorder(out / "throughput.jsonl")
    cluster = Cluster(ROOT)
    failures = 0
    try:
        for hosts, link in cells(args):
            todo = [m for m in args.models if args.fresh or not rec.done(
                kind="throughput", model_spec=m, hosts=hosts, link=link)]
            if not todo:
                continue
            log(f"== {hosts} host(s), link {link}")
            prepare_cell(cluster, rec, hosts, link, log)
            for spec in todo:
                failures += _cell(args, cluster, rec, spec, hosts, link)
    finally:
        cluster.down()
    return 1 if failures else 0


def _cell(args, cluster, rec, spec, hosts, link) -> int:
    name, options = parse_model(spec)
    cfg = model_config(args, name, options)
    tmp = Path(args.out) / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(PEER), "--bench", "-c", str(cfg), "--batch", str(args.batch),
           "--bench-steps", str(args.steps), "--bench-warmup", str(args.warmup),
           "--rounds", str(args.rounds),
           "--threads", "1", "--json", str(tmp / "bench.json")]
    if args.ddp:
        cmd += ["--modes", ",".join(args.ddp)]
    for c in (["nosync"] if args.nosync else []) + list(args.compress):
        cmd += ["--dtnn", c]
    if args.bucket_mb is not None:
        cmd += ["--dtnn-bucket-mb", str(args.bucket_mb)]
    log(f"  {spec} on {hosts} rank(s) over {link}")
    cell = {"model_spec": spec, "model": name, "hosts": hosts, "link": link,
            **machine_note()}
    result = run_json(cluster.argv(hosts, cmd), tmp / "bench.json", args.timeout, log)
    if "error" in result:
        log(f"    FAILED: {result['error']}")
        rec.write(dict(cell, kind="throughput-error", error=result["error"], command=cmd))
        return 1
    bare = {k: result.get(k) for k in ("mpi_allreduce_seconds", "gloo_allreduce_seconds")}
    for row in result["results"]:
        rec.write(dict(cell, kind="throughput", **bare, **row))
    return 0


# ------------------------------------------------------------------- time to accuracy
def tta(args) -> int:
    out = Path(args.out)
    rec = Recorder(out / "tta.jsonl")
    cluster = Cluster(ROOT)
    failures = 0
    base_cell = {"hosts": args.tta_hosts, "link": args.tta_link, "target": args.target,
                 "config": args.config, "overrides": args.overrides,
                 "evals_per_epoch": args.evals_per_epoch}
    try:
        prepared = False
        for run in args.run:
            kind, _, name = run.partition(":")
            framework = "dtnn-torch" if kind == "dtnn" else "torch-ddp"
            if not args.fresh and rec.done(kind="tta", framework=framework, name=name,
                                           **{k: base_cell[k] for k in ("hosts", "link",
                                                                        "target")}):
                continue
            if not prepared:
                prepare_cell(cluster, rec, args.tta_hosts, args.tta_link, log)
                prepared = True
            failures += _tta_run(args, cluster, rec, framework, name, base_cell)
    finally:
        cluster.down()
    return 1 if failures else 0


def _tta_run(args, cluster, rec, framework, name, base_cell) -> int:
    run_dir = Path(args.out) / "tta" / f"{framework}-{slug(name)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        metrics.unlink()
    script = PEER if framework == "dtnn-torch" else ROOT / "benchmarks" / "ddp_peer.py"
    cmd = [sys.executable, str(script), "-c", args.config, "--threads", "1",
           "--target-accuracy", str(args.target), "--evals-per-epoch",
           str(args.evals_per_epoch), "--out", str(metrics)]
    cmd += ["--compress", name] if framework == "dtnn-torch" else ["--mode", name]
    if args.bucket_mb is not None and framework == "dtnn-torch":
        cmd += ["--dtnn-bucket-mb", str(args.bucket_mb)]
    for item in args.overrides:
        cmd += ["--set", item]
    log(f"  time to accuracy: {framework} {name}")
    base = dict(base_cell, framework=framework, name=name, command=cmd, **machine_note())
    summary, seconds = run_tta_job(cluster, args.tta_hosts, cmd, args.timeout, metrics,
                                   base, rec, log)
    if summary is None:
        return 1
    summary["job_seconds"] = seconds
    rec.write(summary)
    log(f"    time to {args.target}: {summary['time_to_accuracy']}, final accuracy "
        f"{summary['final_eval_accuracy']}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report:
        from torch_bridge_report import report
        print(report(Path(args.out)))
        return 0
    links = [args.tta_link] if args.tta else args.links
    if os.geteuid() != 0 and any(link != "shm" for link in links):
        raise SystemExit("bench_torch_bridge: the simulated cluster needs root")
    return tta(args) if args.tta else throughput(args)


if __name__ == "__main__":
    sys.exit(main())
