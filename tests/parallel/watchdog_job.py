"""A small MPI program around the watchdog (run by test_watchdog.py):

    mpiexec -n N python watchdog_job.py MODE TIMEOUT

Every rank runs 30 steps of "compute, then a guarded Iallreduce wait".  MODE:

    ok     nothing happens: the program ends normally (exit barrier passes), status 0
    leave  rank 1's program ends after 5 steps (a clean early return)
    busy   rank 1 computes for 60 s at step 5 (the stall detector must name it)
    nested a guarded wait inside another guarded wait (counts once)
"""
import sys
import time

import numpy as np
from mpi4py import MPI

from dtnn.parallel import watchdog

mode, timeout = sys.argv[1], float(sys.argv[2])
comm = MPI.COMM_WORLD
wd = watchdog.start(comm, timeout)
a = np.ones(16)
for step in range(30):
    if comm.rank == 1 and step == 5:
        if mode == "leave":
            break
        if mode == "busy":
            time.sleep(60)
    req = comm.Iallreduce(MPI.IN_PLACE, a)
    with watchdog.guard("gradient exchange", step):
        if mode == "nested":
            with watchdog.guard("inner"):
                assert wd._state[1] == "gradient exchange"
        req.Wait()
    time.sleep(0.01)
assert wd._state[3] is None
print(f"rank {comm.rank} done", flush=True)
