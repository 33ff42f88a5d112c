"""An MPI job whose rank 1 fails on purpose, run through the real CLI error handling.

    mpiexec -n 2 python tests/parallel/fault_job.py {user,bug,kill,exit,none}

Rank 1 raises a UserError ("user"), a RuntimeError ("bug"), SIGKILLs itself ("kill")
or calls sys.exit(3) ("exit"); the other ranks meanwhile sit in collectives, as
training ranks would.  They give up by themselves after 60 s so that a broken abort
path can never leave processes behind.
"""
import os
import signal
import sys
import time


def add_arguments(p):
    p.add_argument("kind", choices=["user", "bug", "kill", "exit", "none"])


def run(args):
    import numpy as np
    from dtnn.parallel import get_context
    from dtnn.errors import UserError
    ctx = get_context()
    ctx.barrier()
    if ctx.rank == 1:
        time.sleep(0.2)
        if args.kind == "user":
            raise UserError("injected user error")
        if args.kind == "bug":
            raise RuntimeError("injected bug")
        if args.kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if args.kind == "exit":
            sys.exit(3)
    if args.kind == "none":
        ctx.barrier()
        return 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # a collective that rank 1 never joins
        req = ctx.comm.Ibarrier()
        while not req.Test():
            time.sleep(0.01)
            if time.monotonic() > deadline:
                break
    print(f"rank {ctx.rank}: still alive after 60 s", flush=True)
    return 0


if __name__ == "__main__":
    from dtnn.cli import main as cli
    cli.SUBCOMMANDS["fault"] = ("__main__", "inject a fault on rank 1")
    sys.exit(cli.main(["fault", *sys.argv[1:]]))
