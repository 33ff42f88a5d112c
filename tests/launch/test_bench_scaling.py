"""``dtnn bench scaling``: the report from recorded lines, and a small shared-memory
sweep end to end (no root needed: link ``shm`` is a plain mpiexec)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from dtnn.bench.scaling import parse_model
from dtnn.bench.scaling_report import add_efficiency, latest, write_report

MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")


def _row(framework, mode, compress, hosts, link, sps, **extra):
    return dict(kind="throughput", model_spec="m", model="m", params=1000, hosts=hosts,
                link=link, framework=framework, mode=mode, compress=compress,
                samples_per_second=sps, step_seconds=64 / sps, **extra)


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_parse_model():
    assert parse_model("vgg11_bn:width=0.5,hidden=64") == ("vgg11_bn", {"width": 0.5,
                                                                         "hidden": 64})
    assert parse_model("simplecnn") == ("simplecnn", {})


def test_efficiency_is_relative_to_the_skipped_exchange_of_the_same_cell():
    rows = latest([
        _row("dtnn", "none", "none", 2, "1gbit", 1000.0),
        _row("dtnn", "overlap", "none", 2, "1gbit", 250.0),
        _row("dtnn", "overlap", "none", 2, "1gbit", 500.0),   # a later measurement wins
        _row("dtnn", "none", "none", 2, "shm", 2000.0),
        _row("dtnn", "overlap", "topk", 2, "shm", 1500.0),
        _row("torch-ddp", "nosync", "nosync", 2, "shm", 800.0),
        _row("torch-ddp", "none", "none", 2, "shm", 400.0)])
    add_efficiency(rows)
    eff = {(r["framework"], r["link"], r["mode"], r["compress"]): r["efficiency"] for r in rows}
    assert eff[("dtnn", "1gbit", "overlap", "none")] == pytest.approx(0.5)
    assert eff[("dtnn", "shm", "overlap", "topk")] == pytest.approx(0.75)
    assert eff[("torch-ddp", "shm", "none", "none")] == pytest.approx(0.5)
    assert eff[("dtnn", "shm", "none", "none")] == pytest.approx(1.0)


def test_report_tables_csv_and_plots(tmp_path):
    _write(tmp_path / "scaling.jsonl", [
        {"kind": "selftest", "hosts": 2, "link": "100mbit", "passed": True,
         "lines": ["simcluster selftest: PASS: best 95% of 100 Mbit/s"]},
        _row("dtnn", "serial", "none", 1, "shm", 500.0),
        _row("dtnn", "none", "none", 2, "100mbit", 900.0, sent_bytes=0),
        _row("dtnn", "overlap", "topk", 2, "100mbit", 600.0, sent_bytes=4096,
             compute_seconds=0.05, codec_seconds=0.01, exposed_comm_seconds=0.02),
        _row("torch-ddp", "nosync", "nosync", 2, "100mbit", 700.0),
        _row("torch-ddp", "none", "none", 2, "100mbit", 70.0)])
    _write(tmp_path / "tta.jsonl", [
        dict(kind="tta", framework=fw, name=name, hosts=2, link="100mbit", target=0.8,
             time_to_accuracy=t, steps=100, step_seconds=0.1, final_eval_accuracy=0.81,
             curve=[[t or 50.0, 0.81, 100]])
        for fw, name, t in (("dtnn", "topk", 10.0), ("torch-ddp", "none", 40.0),
                            ("torch-ddp", "powersgd", 15.0), ("dtnn", "sign", None))])
    report = write_report(tmp_path).read_text()
    assert "PASS: best 95%" in report
    assert "| dtnn topk | 600 (0.67) |" in report
    assert "| DDP none | 70 (0.10) |" in report
    assert "| dtnn topk | 10.0 | 100 |" in report and "4.00x | 1.50x |" in report
    assert "| dtnn sign | not reached |" in report
    header = (tmp_path / "scaling.csv").read_text().splitlines()[0]
    assert header.startswith("model_spec,params,hosts,link,framework,mode,compress")
    assert (tmp_path / "throughput_m.png").stat().st_size > 0
    assert (tmp_path / "tta.png").stat().st_size > 0


def _scaling(*args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    return subprocess.run([sys.executable, "-m", "dtnn", "bench", "scaling", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("args,message", [
    (["--compress", "nosuch"], "nosuch"), (["--ddp", "fp8"], "--ddp")])
def test_bad_options_are_one_line_errors(tmp_path, args, message):
    res = _scaling("--out", str(tmp_path), *args)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and message in res.stderr


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(MPIEXEC) or importlib.util.find_spec("torch") is None,
                    reason="needs mpiexec next to this Python and torch")
def test_shared_memory_sweep_end_to_end(tmp_path):
    args = ["--out", str(tmp_path), "--models", "simplecnn:filters=4,hidden=16",
            "--hosts", "1", "2", "--links", "shm", "--compress", "none", "topk:ratio=0.05",
            "--ddp", "nosync", "none", "--steps", "2", "--warmup", "1"]
    res = _scaling(*args)
    assert res.returncode == 0, res.stdout + res.stderr
    records = [json.loads(l) for l in (tmp_path / "scaling.jsonl").read_text().splitlines()]
    got = {(r["framework"], r["hosts"], r["mode"], r["compress"]) for r in records}
    assert ("dtnn", 1, "serial", "none") in got
    assert {("dtnn", 2, "none", "none"), ("dtnn", 2, "overlap", "topk:ratio=0.05"),
            ("dtnn", 2, "blocking", "none"), ("torch-ddp", 2, "nosync", "nosync"),
            ("torch-ddp", 2, "none", "none")} <= got
    assert all(r["samples_per_second"] > 0 for r in records)
    assert "dtnn topk:ratio=0.05" in (tmp_path / "report.md").read_text()
    # a second run finds every cell recorded and measures nothing again
    again = _scaling(*args)
    assert again.returncode == 0 and "dtnn on" not in again.stdout
    assert len((tmp_path / "scaling.jsonl").read_text().splitlines()) == len(records)
