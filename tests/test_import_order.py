"""Import order does not matter: with numpy (OpenBLAS) loaded before dtnn, setting more
than one thread makes OpenBLAS re-read OPENBLAS_THREAD_TIMEOUT (no busy-waiting workers),
without a warning; GEMMs still give the same numbers (to rounding: with more than one
thread dtnn runs the BLAS at one thread, dtnn.gemm, which changes its blocking)."""
import json
import os
import subprocess
import sys

CHILD = r"""
import json, os, ctypes, logging
os.environ.pop("OPENBLAS_THREAD_TIMEOUT", None)
import numpy as np
from threadpoolctl import threadpool_info
a = np.random.default_rng(0).random((300, 300))
before = a @ a
libs = [i["filepath"] for i in threadpool_info() if i["internal_api"] == "openblas"]
timeout = lambda: [ctypes.CDLL(p).openblas_thread_timeout() for p in libs]
start = timeout()
records = []
logging.getLogger("dtnn").addHandler(type("H", (logging.Handler,), {"emit": lambda s, r: records.append(r.getMessage())})())
import dtnn
late = dtnn.OPENBLAS_TIMEOUT_TOO_LATE
dtnn.init(threads=2, logging=False)
print(json.dumps({"libs": len(libs), "start": start, "late": late, "after": timeout(),
                  "still_late": dtnn.OPENBLAS_TIMEOUT_TOO_LATE, "warnings": records,
                  "same": bool(np.allclose(before, a @ a, rtol=1e-12, atol=0))}))
"""


def test_numpy_first_is_fixed_by_init():
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_THREAD_TIMEOUT", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    env["DTNN_MPI"] = "0"
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    if not info["libs"]:
        import pytest
        pytest.skip("numpy is not linked to OpenBLAS here")
    assert info["late"] and info["start"] != [1]          # the trap was there
    assert info["after"] == [1] * info["libs"] and not info["still_late"]
    assert not [w for w in info["warnings"] if "OpenBLAS" in w]
    assert info["same"]
