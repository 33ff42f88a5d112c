"""get_context() without and with MPI, in fresh interpreters (no MPI in this one)."""
import json
import sys
import textwrap

import pytest

from ._util import clean_env, run

pytestmark = pytest.mark.timeout(120, method="thread")

PROBE = textwrap.dedent("""
    import json, sys
    from dtnn.parallel import get_context
    ctx = get_context()
    out = {"type": type(ctx).__name__, "rank": ctx.rank, "size": ctx.size,
           "local_size": ctx.local_size, "mpi_loaded": "mpi4py.MPI" in sys.modules}
    if "--train" in sys.argv:
        from dtnn.errors import UserError
        from dtnn.models import build_model
        m = build_model("simplecnn", (1, 8, 8), 3, filters=2, hidden=4)
        try:
            r = ctx.make_reducer(m, {"bucket_mb": 0})
            out["reducer"] = None if r is None else r.stats()["buckets"]
        except UserError as exc:
            out["error"] = str(exc)
    print(json.dumps(out))
""")


def _probe(env=None, train=False):
    code, out, err, _ = run([sys.executable, "-c", PROBE] + (["--train"] if train else []),
                            timeout=90, env=clean_env(env))
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1]), err


def test_plain_python_is_serial_and_does_not_initialise_mpi():
    info, _ = _probe()
    assert info == {"type": "SerialContext", "rank": 0, "size": 1, "local_size": 1,
                    "mpi_loaded": False}


def test_dtnn_mpi_1_gives_an_mpi_context_of_one():
    info, _ = _probe({"DTNN_MPI": "1"}, train=True)
    assert info["type"] == "MPIContext" and info["size"] == 1 and info["local_size"] == 1
    assert info["reducer"] >= 2  # simplecnn: conv + 2 dense layers, one bucket each


def test_dtnn_mpi_0_forces_serial():
    info, _ = _probe({"DTNN_MPI": "0", "OMPI_COMM_WORLD_SIZE": "4"})
    assert info["type"] == "SerialContext" and not info["mpi_loaded"]


def test_launcher_mpi_mismatch_warns_and_refuses_to_train():
    # Open MPI's launcher variables, but mpi4py here is MPICH: a singleton world
    info, err = _probe({"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "2"}, train=True)
    assert info["type"] == "MismatchedContext" and info["size"] == 1
    assert "launcher/MPI mismatch" in err and "OMPI_COMM_WORLD_SIZE=4" in err
    assert "launcher/MPI mismatch" in info["error"]
