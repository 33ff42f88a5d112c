"""The fault matrix: every way one rank can fail ends the whole 2-process job with a
non-zero status, no process left behind and a loadable last checkpoint; a stopped
rank (SIGSTOP, like a dead NFS mount) ends it at the stall timeout, named.

Each case is one real ``mpiexec -n 2`` job of a tiny model (about a second); the
harness kills it (stopped ranks included) if it outlives its timeout.
"""
import pytest

from .fault_matrix import CASES, problems, run_case

pytestmark = pytest.mark.timeout(150, method="thread")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault_ends_the_job(case, tmp_path):
    result = run_case(case, str(tmp_path), processes=2, stall_timeout=3.0)
    assert not problems(result), (problems(result), result.output[-3000:])
