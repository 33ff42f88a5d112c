"""The watchdog thread: stalls are named, a rank whose program ends early ends the
job, a normal end passes the exit barrier (subprocess mpiexec jobs, hard timeouts)."""
import os
import sys

import pytest

from ._util import HERE, clean_env, mpiexec, run

pytestmark = pytest.mark.timeout(120, method="thread")
JOB = os.path.join(HERE, "watchdog_job.py")


def _job(n, mode, timeout):
    return run([mpiexec(), "-n", str(n), sys.executable, JOB, mode, str(timeout)],
               timeout=60, env=clean_env())


@pytest.mark.parametrize("mode", ["ok", "nested"])
def test_normal_end_passes_the_exit_barrier(mode):
    code, out, err, _ = _job(2, mode, 5)
    assert code == 0, err
    assert out.count("done") == 2


def test_rank_whose_program_ends_early_ends_the_job():
    code, out, err, seconds = _job(3, "leave", 0)   # no stall timeout needed
    assert code not in (0, None), err
    assert "rank 1 left the job early" in err and "rank(s) 0, 2 still wait" in err
    assert seconds < 30


def test_stall_names_the_busy_rank():
    code, out, err, seconds = _job(2, "busy", 2)
    assert code == 124, err
    assert "[rank 0/2] dtnn: error: stall: rank 0 waited 2 s in 'gradient exchange " \
           "(step 5)'; did not arrive: rank 1 (computing for" in err
    assert err.count("dtnn: error: stall") == 1
    assert seconds < 30
