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


API_JOB = os.path.join(HERE, "api_job.py")


def _api_job(mode, tmp_path, signal_to=None, stall_timeout="0"):
    import signal
    import subprocess
    import time
    env = clean_env({"DTNN_STALL_TIMEOUT": stall_timeout})
    if signal_to is None:
        return run([mpiexec(), "-n", "2", sys.executable, API_JOB, mode, str(tmp_path)],
                   timeout=90, env=env)
    proc = subprocess.Popen([mpiexec(), "-n", "2", sys.executable, API_JOB, mode,
                             str(tmp_path)], env=env, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    ready = tmp_path / "ready"
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        if signal_to == "mpiexec":
            os.kill(proc.pid, signal.SIGINT)
        else:
            os.kill(int(ready.read_text()), signal.SIGSTOP)
        _, err = proc.communicate(timeout=60)
        return proc.returncode, "", err, 0.0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_custom_loop_normal_end(tmp_path):
    code, out, err, _ = _api_job("ok", tmp_path)
    assert code == 0, err
    assert out.count("done") == 2


def test_custom_loop_rank_leaving_early_ends_the_job(tmp_path):
    code, out, err, seconds = _api_job("leave", tmp_path)
    assert code not in (0, None), err
    assert "rank 1 left the job early" in err and "rank(s) 0 still wait" in err
    assert seconds < 60


@pytest.mark.parametrize("fault,status,text", [
    ("mpiexec", 130, "interrupted by SIGINT"),
    ("stop", 124, "did not arrive: rank 1 (no answer")])
def test_custom_loop_ctrl_c_and_stall_end_the_job(tmp_path, fault, status, text):
    code, _, err, _ = _api_job("wait", tmp_path, signal_to=fault, stall_timeout="2")
    assert code == status, err
    assert text in err
