"""A failure on one rank ends the whole MPI job quickly, with a non-zero status and
the failing rank's message (subprocess ``mpiexec -n 2``; never hangs: hard timeout)."""
import os
import sys

import pytest

from ._util import HERE, mpiexec, run

pytestmark = pytest.mark.timeout(120, method="thread")

JOB = os.path.join(HERE, "fault_job.py")
LIMIT = 30.0  # seconds a failed job may take to die (the healthy run takes ~1 s)


def _job(kind):
    return run([mpiexec(), "-n", "2", sys.executable, JOB, kind], timeout=LIMIT + 30)


def test_healthy_job_exits_zero():
    code, out, err, _ = _job("none")
    assert code == 0, err


def test_user_error_on_one_rank_aborts_the_job():
    code, out, err, seconds = _job("user")
    assert code not in (0, None), f"exit status {code}\n{err}"
    assert seconds < LIMIT
    assert "[rank 1/2] dtnn fault: error: injected user error" in err
    assert "Traceback" not in err  # a UserError is one line


def test_bug_on_one_rank_aborts_with_traceback():
    code, out, err, seconds = _job("bug")
    assert code not in (0, None), f"exit status {code}\n{err}"
    assert seconds < LIMIT
    assert "[rank 1/2] Traceback" in err and "[rank 1/2] RuntimeError: injected bug" in err


def test_early_exit_on_one_rank_aborts_the_job():
    code, out, err, seconds = _job("exit")
    assert code not in (0, None), f"exit status {code}\n{err}"
    assert seconds < LIMIT
    assert "[rank 1/2] dtnn fault: exit status 3" in err


def test_rank_killed_by_signal_ends_the_job():
    code, out, err, seconds = _job("kill")
    assert code not in (0, None), f"exit status {code}\n{err}"
    assert seconds < LIMIT
    assert "still alive" not in out
