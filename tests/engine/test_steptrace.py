"""DTNN_STEP_TRACE: one row per optimizer step on every rank, evaluation boundaries
flagged, the counters monotone, and benchmarks/analyze_step_trace.py's stretches."""
import importlib.util
import json
from pathlib import Path

import numpy as np

from dtnn.cli.main import main
from dtnn.engine.steptrace import ENV, FIELDS

DIGITS = ["--set", "data.source=digits", "--set", "model.name=simplecnn",
          "--set", "model.options.filters=8", "--set", "model.options.hidden=32",
          "--set", "train.batch_size=32", "--set", "optim.lr=0.05",
          "--set", "output.progress=false"]
ROOT = Path(__file__).resolve().parents[2]


def _analyzer():
    spec = importlib.util.spec_from_file_location(
        "analyze_step_trace", ROOT / "benchmarks" / "analyze_step_trace.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_trace_has_a_row_per_step_and_flags_evaluations(tmp_path, monkeypatch, capsys):
    trace = tmp_path / "trace"
    monkeypatch.setenv(ENV, str(trace))
    run = tmp_path / "run"
    assert main(["train", *DIGITS, "--set", "train.epochs=2", "--set", "train.evals_per_epoch=3",
                 "--run-dir", str(run)]) == 0
    rows = np.load(trace / "steps_rank0.npy")
    meta = json.loads((trace / "threads_rank0.json").read_text())
    assert tuple(meta["fields"]) == FIELDS and rows.shape[1] == len(FIELDS)
    evals = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in evals if r.get("event") == "eval"]
    assert rows.shape[0] == steps[-1]
    col = {name: i for i, name in enumerate(FIELDS)}
    # the row after each evaluation (but the last, after which no step ran) is flagged
    flagged = list(np.flatnonzero(rows[:, col["eval_before"]]) + 1)
    assert flagged == [s + 1 for s in steps[:-1]]
    for name in ("t_end", "thread_cpu", "process_cpu", "nvcsw", "nivcsw"):
        assert np.all(np.diff(rows[:, col[name]]) >= 0), name
    assert sum(t["main"] for t in meta["threads"]) == 1
    # a single process has no reducer: its split columns are zero
    assert not rows[:, col["exposed"]].any()

    mod = _analyzer()
    out = tmp_path / "summary.json"
    assert mod.main([str(trace), "--json", str(out)]) == 0
    (recs,) = json.loads(out.read_text()).values()
    assert len(recs) == len(steps)
    assert sum(r["steps"] for r in recs) == rows.shape[0] - len(steps)   # first rows dropped
    assert "| stretch |" in capsys.readouterr().out
    # packed for committing: one compressed file, the same numbers
    assert mod.main([str(trace), "--pack", "--json", str(tmp_path / "packed.json")]) == 0
    assert not list(trace.glob("steps_rank*.npy")) and (trace / "steps.npz").exists()
    assert json.loads((tmp_path / "packed.json").read_text()) == json.loads(out.read_text())


def test_no_trace_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert main(["train", *DIGITS, "--set", "train.epochs=1",
                 "--run-dir", str(tmp_path / "run")]) == 0
    assert not list(tmp_path.rglob("steps_rank*.npy"))


def test_analyzer_names_a_directory_without_a_trace(tmp_path, capsys):
    assert _analyzer().main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "DTNN_STEP_TRACE" in err and err.count("\n") == 1


def test_a_directory_with_a_trace_is_refused_not_overwritten(tmp_path, monkeypatch, capsys):
    trace = tmp_path / "trace"
    monkeypatch.setenv(ENV, str(trace))
    assert main(["train", *DIGITS, "--set", "train.epochs=1",
                 "--run-dir", str(tmp_path / "run1")]) == 0
    before = {p.name: p.read_bytes() for p in trace.iterdir()}
    assert "steps_rank0.npy" in before
    capsys.readouterr()
    # a second run into the same trace directory: refused before training, one line
    assert main(["train", *DIGITS, "--set", "train.epochs=1",
                 "--run-dir", str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err.strip()
    assert ENV in err and str(trace) in err and "steps_rank0.npy" in err
    assert err.count("\n") == 0
    assert {p.name: p.read_bytes() for p in trace.iterdir()} == before
    assert not (tmp_path / "run2" / "metrics.jsonl").exists()
    # the packed form counts as a trace too; a file is not a directory
    packed = tmp_path / "packed"
    packed.mkdir()
    (packed / "steps.npz").write_bytes(b"")
    monkeypatch.setenv(ENV, str(packed))
    assert main(["train", *DIGITS, "--run-dir", str(tmp_path / "run3")]) == 2
    assert "steps.npz" in capsys.readouterr().err
    monkeypatch.setenv(ENV, str(packed / "steps.npz"))
    assert main(["train", *DIGITS, "--run-dir", str(tmp_path / "run4")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_the_trace_times_each_end_of_epoch_section(tmp_path, monkeypatch):
    trace = tmp_path / "trace"
    monkeypatch.setenv(ENV, str(trace))
    assert main(["train", *DIGITS, "--set", "train.epochs=2",
                 "--run-dir", str(tmp_path / "run")]) == 0
    ends = json.loads((trace / "threads_rank0.json").read_text())["epoch_end_seconds"]
    assert len(ends) == 2 and all(s > 0 for s in ends)
