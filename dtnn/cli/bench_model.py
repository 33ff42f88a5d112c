"""``dtnn bench model``: the alpha-beta cost model of the gradient exchange.

    dtnn bench model --sweep benchmarks/results/collectives/sweep.jsonl \\
        --validate benchmarks/results/scaling_exchange/scaling.jsonl \\
        --out benchmarks/results/model

Calibrates on this machine (zoo models' step times and gradient readiness, codec time
per element), fits the links to the collectives sweep, checks the predictions
against the simulated-cluster measurements (``--validate``), and predicts 2..256
nodes at 1/10/100 Gbit/s: ``OUT/model.json``, ``OUT/model.md``, ``OUT/model_*.png``.
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

from dtnn.errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    from dtnn.bench.model import DEFAULT_MODELS, DEFAULT_SPECS
    p.add_argument("--sweep", nargs="+", required=True, metavar="JSONL",
                   help="dtnn bench collectives results (the link fit)")
    p.add_argument("--validate", nargs="*", default=[], metavar="JSONL",
                   help="dtnn bench scaling results to check the predictions against")
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    p.add_argument("--compress", nargs="+", default=list(DEFAULT_SPECS), metavar="SPEC")
    p.add_argument("--nodes", nargs="+", type=int, default=[2, 4, 8, 16, 32, 64, 128, 256])
    p.add_argument("--links", nargs="+", default=["1gbit", "10gbit", "100gbit"])
    p.add_argument("--codec-from", nargs="+", default=[], metavar="JSON",
                   help="dtnn bench dist --json of the compressors on plain mpiexec -n 2: "
                        "scales the kernels' codec times to what the reducer spends; a "
                        "later file's rows on another collective (--dist collective=qring) "
                        "calibrate that collective apart")
    p.add_argument("--oversub", nargs="*", default=[], metavar="JSONL",
                   help="python -m dtnn.bench.oversub results (one rank per core and "
                        "oversubscribed): the cost of ranks sharing cores, added to every "
                        "validation row at its ranks per core, and to the predictions")
    p.add_argument("--ranks-per-core", nargs="+", type=float, default=[1.0, 2.0],
                   metavar="S", help="predict at these ranks per core (1: a real "
                                     "cluster; 2: this machine's 4 simulated hosts)")
    p.add_argument("--no-hops", action="store_true",
                   help="collectives advance continuously (the model before its "
                        "progress-bound hops and blocking rounds term), for comparison")
    p.add_argument("--batch", type=int, default=32, help="samples per rank per step")
    p.add_argument("--out", default="benchmarks/results/model", metavar="DIR")


def run(args) -> int:
    from dtnn.bench import model as M
    from dtnn.compress import check_spec
    from dtnn.bench.scaling import read_records
    from dtnn.threads import set_threads
    for path in (list(args.sweep) + list(args.validate) + list(args.oversub)
                 + list(args.codec_from)):
        if not Path(path).is_file():
            raise ConfigError(f"{path}: no such results file")
    for spec in args.compress:
        if spec != "none":
            check_spec(spec)
    bad = [l for l in args.links if l not in M.RATES]
    if bad:
        raise ConfigError(f"--links: unknown rate(s) {', '.join(bad)} (known: "
                          f"{', '.join(M.RATES)})")
    if any(s <= 0 for s in args.ranks_per_core):
        raise ConfigError("--ranks-per-core: must be > 0")
    try:
        oversub, oversub_runs = M.fit_oversub(*[Path(p) for p in args.oversub])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"--oversub: not python -m dtnn.bench.oversub results "
                          f"({type(e).__name__}: {e})")
    if not args.oversub:    # no calibration given: no oversubscription term
        oversub = None
    set_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # one fit per link over every sweep (small messages resolve alpha, big ones beta)
    links = M.fit_links(*[Path(path) for path in args.sweep])
    records = [r for path in args.validate for r in read_records(Path(path))]
    wanted = list(dict.fromkeys(list(args.models) + [r["model_spec"] for r in records
                                                     if r.get("kind") == "throughput"]))
    profiles = {m: M.profile_model(m, batch=args.batch) for m in wanted}
    specs = list(dict.fromkeys(list(args.compress) + [
        r.get("compress", "none").split("|")[0] for r in records if r.get("framework") == "dtnn"]))
    codecs = {s: M.measure_codec(s) for s in specs}
    # a deep copy: calibrate_codecs changes the codecs in place (on_collective too)
    kernels = {k: copy.deepcopy(M.dump(v)) for k, v in codecs.items() if v is not None}
    factors = M.calibrate_codecs(codecs, *[Path(p) for p in args.codec_from])
    hops = not args.no_hops
    checks = M.validate(records, profiles, codecs, links, oversub, hops=hops)
    def predict(over, per_core):
        return M.extrapolate({m: profiles[m] for m in args.models},
                             {s: codecs[s] for s in args.compress}, links, args.nodes,
                             args.links, oversub=over, ranks_per_core=per_core, hops=hops)
    rows = [row for s in args.ranks_per_core
            for row in predict(oversub, s)]
    if oversub is not None:
        # one rank per core with a transport that takes no CPU of the ranks' cores
        # (RDMA, offloading NICs): the model without the oversubscription term
        rows += [dict(row, transfer_cpu=False) for row in predict(None, 1.0)]
    from dtnn._kernels.isa import cpu_model as cpu_name
    result = {"cpu": cpu_name(), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
              "links": {k: M.dump(v) for k, v in links.items()},
              "profiles": {k: M.dump(v) for k, v in profiles.items()},
              "codecs": {k: M.dump(v) for k, v in codecs.items()},
              "codec_kernels": kernels, "codec_calibration": factors,
              "codec_from": list(args.codec_from),
              "oversub": None if oversub is None else M.dump(oversub),
              "oversub_runs": oversub_runs, "oversub_from": list(args.oversub),
              "hops": hops,
              "validation": checks, "predictions": rows}
    (out / "model.json").write_text(json.dumps(result, indent=1))
    # the plots: the first --ranks-per-core (1 by default: a real cluster)
    plots = M.plot([r for r in rows if r.get("ranks_per_core") == args.ranks_per_core[0]
                    and r.get("transfer_cpu", True)], out)
    (out / "model.md").write_text(M.report(result, plots))
    print(f"model: {out / 'model.md'} ({len(checks)} validation rows, "
          f"{len(rows)} predictions)")
    return 0
