"""The fault matrix: every way one rank can fail ends the whole 2-process job with a
non-zero status, no process left behind and a loadable last checkpoint; a stopped
rank (SIGSTOP, like a dead NFS mount) ends it at the stall timeout, named.

Each case is one real ``mpiexec -n 2`` job of a tiny model (about a second); the
harness kills it (stopped ranks included) if it outlives its timeout.
"""
import os

import pytest

from dtnn.cli.main import main

from .fault_matrix import CASES, problems, run_case

pytestmark = pytest.mark.timeout(150, method="thread")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault_ends_the_job(case, tmp_path):
    result = run_case(case, str(tmp_path), processes=2, stall_timeout=3.0)
    assert not problems(result), (problems(result), result.output[-3000:])


def test_kill_during_save_leaves_a_temp_file_the_next_start_removes(tmp_path):
    case = next(c for c in CASES if c.marker == "saving")
    result = run_case(case, str(tmp_path), processes=2, stall_timeout=0)
    assert not problems(result), problems(result)
    run_dir = tmp_path / "run"
    stale = [p for p in os.listdir(run_dir) if ".tmp-" in p]
    assert stale, "the killed writer left no temporary file (was it killed mid-save?)"
    code = main(["train", "--resume", str(run_dir / "checkpoint.h5"),
                 "--set", f"train.epochs={result.checkpoint_epoch + 1}",
                 "--set", "dist.stall_timeout=0"])
    assert code == 0
    assert not [p for p in os.listdir(run_dir) if ".tmp-" in p]
