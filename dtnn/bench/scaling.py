"""``dtnn bench scaling``: dtnn vs PyTorch DDP on a simulated bandwidth-limited cluster.

This process is the conductor, not a rank: for every (model, hosts, link) cell it
brings the simulated cluster up (``launch/simcluster.py up HOSTS RATE``, root only),
runs its ``selftest``, then launches

* ``python -m dtnn bench dist`` (every compressor, overlap and blocking, plus the
  exchange-skipped ``none`` mode), and
* ``benchmarks/ddp_peer.py --bench`` (DDP uncompressed, fp16 hook, PowerSGD hook, and
  ``no_sync`` = exchange skipped)

on HOSTS ranks, one per simulated host, each with one BLAS/OpenMP thread.  Link
``shm`` is the reference: a plain ``mpiexec -n HOSTS`` on this machine (shared memory,
no shaping).  Every result is appended as one JSON line to ``OUT/scaling.jsonl`` as
soon as it exists, so an interrupted sweep keeps what it measured and a rerun skips
cells already there (``--fresh`` to redo them).

``--tta`` measures time-to-accuracy instead: full ``dtnn train`` runs (one per
compressor) and ``ddp_peer.py`` runs (one per DDP mode) on the same cluster, same
config, evaluating ``--evals-per-epoch`` times per epoch and stopping at
``--target``; results go to ``OUT/tta.jsonl`` and the runs' metrics under ``OUT/tta/``.

Communication efficiency = samples/s with the exchange / samples/s of the same ranks
with the exchange skipped (dtnn: mode ``none``; DDP: ``no_sync``).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from dtnn.errors import ConfigError, UserError
from dtnn.io.jsonl import JsonlWriter, read_jsonl

DEFAULT_COMPRESS = ("none", "fp16", "bf16", "int8", "qsgd:bits=8", "terngrad", "sign",
                    "topk:ratio=0.01", "randomk:ratio=0.01", "powersgd:rank=2")
DEFAULT_DDP = ("nosync", "none", "fp16", "powersgd")


def repo_root() -> Path:
    """The checkout dtnn runs from (launch/ and benchmarks/ live next to dtnn/)."""
    root = Path(__file__).resolve().parents[2]
    for need in ("launch/simcluster.py", "benchmarks/ddp_peer.py"):
        if not (root / need).exists():
            raise UserError(f"dtnn bench scaling: {root / need} not found (run it from a "
                            "source checkout installed with pip install -e .)")
    return root


def parse_model(spec: str) -> Tuple[str, Dict[str, Any]]:
    """'vgg11_bn:width=0.5' -> ('vgg11_bn', {'width': 0.5})."""
    name, _, rest = spec.partition(":")
    options: Dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"--models: expected NAME[:key=value,...], got {spec!r}")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return name.strip(), options


@dataclass
class Plan:
    out: Path
    models: List[str] = field(default_factory=lambda: ["vgg11_bn:width=0.5", "simplecnn"])
    hosts: List[int] = field(default_factory=lambda: [1, 2, 4])
    links: List[str] = field(default_factory=lambda: ["shm", "100mbit", "1gbit"])
    compress: List[str] = field(default_factory=lambda: list(DEFAULT_COMPRESS))
    ddp: List[str] = field(default_factory=lambda: list(DEFAULT_DDP))
    batch: int = 32
    steps: int = 10
    warmup: int = 3
    timeout: float = 1800.0
    fresh: bool = False
    frameworks: List[str] = field(default_factory=lambda: ["dtnn", "torch-ddp"])
    #: ranks on each simulated host (placed round-robin: 2 hosts x 2 = ranks 0,2 on h0)
    ranks_per_host: int = 1
    #: reducer options for every dtnn row ("key=value")
    dist: List[str] = field(default_factory=list)
    #: dtnn exchange modes (none = the compute-only reference)
    modes: List[str] = field(default_factory=lambda: ["none", "overlap", "blocking"])


class Cluster:
    """Drives launch/simcluster.py (the simulated hosts) or plain mpiexec (``shm``)."""

    def __init__(self, root: Path):
        self.root = root
        self.script = str(root / "launch" / "simcluster.py")
        self.current: Optional[Tuple[int, str]] = None

    def _sim(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, self.script, *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=timeout)

    def prepare(self, hosts: int, link: str) -> Dict[str, Any]:
        """Bring up ``hosts`` hosts at ``link`` and self-test them; the selftest record."""
        if link == "shm" or hosts < 2:
            self.current = (hosts, "shm")
            return {}
        res = self._sim("up", str(hosts), link)
        if res.returncode != 0:
            raise UserError((res.stderr or res.stdout).strip().splitlines()[-1])
        self.current = (hosts, link)
        test = self._sim("selftest")
        lines = [ln for ln in test.stdout.splitlines() if ln.startswith("simcluster selftest")]
        return {"kind": "selftest", "hosts": hosts, "link": link, "lines": lines,
                "passed": test.returncode == 0}

    def argv(self, ranks: int, command: Sequence[str]) -> List[str]:
        hosts, link = self.current or (ranks, "shm")
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        if link == "shm":
            return [mpiexec, "-n", str(ranks), *command]
        return [sys.executable, self.script, "run", "--", "-n", str(ranks), *command]

    def down(self) -> None:
        if self.current and self.current[1] != "shm":
            self._sim("down")
        self.current = None


def rank_env() -> Dict[str, str]:
    """One thread per rank, idle threads that sleep (4 ranks share 2 cores)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1")
    return env


def run_job(argv: Sequence[str], timeout: float) -> Optional[str]:
    """Run one MPI job (one thread per rank); None if it succeeded, else a one-line
    reason."""
    try:
        res = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, timeout=timeout, env=rank_env())
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    if res.returncode != 0:
        return f"exit {res.returncode}: {(res.stderr.strip().splitlines() or ['?'])[-1]}"
    return None


def run_json(argv: Sequence[str], json_path: Path, timeout: float, log) -> Dict[str, Any]:
    """Run one MPI job that writes a JSON result to ``json_path``."""
    if json_path.exists():
        json_path.unlink()
    t0 = time.time()
    error = run_job(argv, timeout)
    if error is None and not json_path.exists():
        error = f"no result written to {json_path}"
    if error is not None:
        return {"error": error}
    log(f"    done in {time.time() - t0:.0f} s")
    with open(json_path) as fh:
        return json.load(fh)


def model_config(plan: Plan, name: str, options: Dict[str, Any]) -> Path:
    """A config naming the model (other sections at their defaults), for ddp_peer.py
    --bench."""
    from dtnn.config import Config, to_toml
    path = plan.out / "configs" / f"{name}_{'_'.join(f'{k}{v}' for k, v in options.items())}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = Config()
    cfg.model.name, cfg.model.options = name, dict(options)
    path.write_text(to_toml(cfg))
    return path


def dtnn_command(plan: Plan, name: str, options: Dict[str, Any], out: Path) -> List[str]:
    cmd = [sys.executable, "-m", "dtnn", "bench", "dist", "--model", name,
           "--batch", str(plan.batch), "--steps", str(plan.steps),
           "--warmup", str(plan.warmup), "--threads", "1", "--json", str(out)]
    for mode in plan.modes:
        cmd += ["--mode", mode]
    for item in plan.dist:
        cmd += ["--dist", item]
    for key, value in options.items():
        cmd += ["--model-option", f"{key}={json.dumps(value)}"]
    for spec in plan.compress:
        cmd += ["--compress", spec]
    return cmd


def ddp_command(plan: Plan, config: Path, root: Path, out: Path) -> List[str]:
    return [sys.executable, str(root / "benchmarks" / "ddp_peer.py"), "--bench",
            "-c", str(config), "--batch", str(plan.batch),
            "--bench-steps", str(plan.steps), "--bench-warmup", str(plan.warmup),
            "--modes", ",".join(plan.ddp), "--threads", "1", "--json", str(out)]


def flatten(result: Dict[str, Any], cell: Dict[str, Any], framework: str) -> List[Dict]:
    """One record per result row, with the cell and the model's size attached."""
    rows = []
    for row in result.get("results", []):
        rec = dict(cell, kind="throughput", framework=framework, params=result.get("params"),
                   grad_bytes=result.get("grad_bytes"))
        rec.update(row)
        rec.setdefault("compress", row.get("mode") if framework == "torch-ddp" else "none")
        rows.append(rec)
    return rows


def read_records(path: Path) -> List[Dict[str, Any]]:
    """The records of a results file; none before it exists."""
    return read_jsonl(path) if path.exists() else []


class Recorder:
    """Appends JSON lines and knows which cells are already done."""

    def __init__(self, path: Path):
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def records(self) -> List[Dict[str, Any]]:
        return read_records(self.path)

    def done(self, **match) -> bool:
        return any(all(r.get(k) == v for k, v in match.items()) for r in self.records())

    def write(self, record: Dict[str, Any]) -> None:
        with JsonlWriter(str(self.path)) as out:
            out.write(record)


def machine_note() -> Dict[str, Any]:
    from dtnn._kernels.isa import cpu_model as cpu_name
    return {"machine": platform.node(), "cores": os.cpu_count(), "cpu": cpu_name(),
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def prepare_cell(cluster: Cluster, rec: Recorder, hosts: int, link: str, log) -> None:
    """Bring ``hosts`` hosts up at ``link``; record and show the link self-test."""
    selftest = cluster.prepare(hosts, link)
    if selftest:
        rec.write(dict(selftest, **machine_note()))
        for line in selftest["lines"]:
            log("   " + line)


def cells(plan: Plan):
    """(hosts, link) pairs in run order: links grouped so the cluster is rebuilt rarely."""
    for link in plan.links:
        for hosts in plan.hosts:
            if hosts == 1 and link != "shm":
                continue   # one rank sends nothing: the shm row is the 1-host reference
            yield hosts, link


def run_throughput(plan: Plan, log=print) -> int:
    root = repo_root()
    rec = Recorder(plan.out / "scaling.jsonl")
    cluster = Cluster(root)
    failures = 0
    try:
        for hosts, link in cells(plan):
            ranks = hosts * plan.ranks_per_host
            todo = [(m, fw) for m in plan.models for fw in plan.frameworks
                    if (fw == "dtnn" or plan.ddp) and (plan.fresh or not rec.done(
                        kind="throughput", model_spec=m, hosts=hosts, link=link,
                        framework=fw, ranks=ranks))]
            if not todo:
                continue
            log(f"== {hosts} host(s), link {link}")
            prepare_cell(cluster, rec, hosts, link, log)
            for spec in dict.fromkeys(m for m, _ in todo):
                frameworks = [fw for m, fw in todo if m == spec]
                failures += _throughput_cell(plan, root, cluster, rec, spec, hosts, link,
                                             frameworks, log)
    finally:
        cluster.down()
    return 1 if failures else 0


def _throughput_cell(plan, root, cluster, rec, spec, hosts, link, frameworks, log) -> int:
    name, options = parse_model(spec)
    ranks = hosts * plan.ranks_per_host
    cell = {"model_spec": spec, "model": name, "model_options": options, "hosts": hosts,
            "link": link, "ranks": ranks, "oversubscription": ranks / (os.cpu_count() or 1),
            **machine_note()}
    tmp = plan.out / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    failures = 0
    jobs = []
    if "dtnn" in frameworks:
        jobs.append(("dtnn", dtnn_command(plan, name, options, tmp / "dtnn.json"),
                     tmp / "dtnn.json"))
    if "torch-ddp" in frameworks:
        cfg = model_config(plan, name, options)
        jobs.append(("torch-ddp", ddp_command(plan, cfg, root, tmp / "ddp.json"),
                     tmp / "ddp.json"))
    for framework, cmd, out in jobs:
        log(f"  {spec}: {framework} on {ranks} rank(s), {hosts} host(s), over {link}")
        result = run_json(cluster.argv(ranks, cmd), out, plan.timeout, log)
        if "error" in result:
            log(f"    FAILED: {result['error']}")
            rec.write(dict(cell, kind="throughput-error", framework=framework,
                           error=result["error"], command=cmd))
            failures += 1
            continue
        for row in flatten(result, cell, framework):
            rec.write(row)
    return failures
