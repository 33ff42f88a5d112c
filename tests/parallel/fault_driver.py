"""One rank of a fault-injection job: ``dtnn train`` with a fault planted at a step.

    mpiexec -n N python fault_driver.py STATE_DIR FAULT RANK STEP -- DTNN_TRAIN_ARGS...

Every rank writes its pid to ``STATE_DIR/pid-<rank>``.  After global step STEP the
rank RANK does FAULT:

    none       nothing (the test signals the process from outside once
               ``STATE_DIR/ready-<rank>`` exists: SIGKILL, SIGTERM, SIGSTOP, SIGINT)
    raise      raises RuntimeError
    exit0      calls sys.exit(0) (a clean early exit)
    hold-save  at its next checkpoint save, after the temporary file is complete but
               before it is renamed into place: writes ``STATE_DIR/saving-<rank>`` and
               sleeps (the test kills it there)

After STEP every rank sleeps 20 ms per step so the job is still training when the
test's signal arrives.  ``STATE_DIR/fault-<rank>`` marks the moment of a planted raise/exit.  The exit status
is dtnn's.
"""
import os
import sys
import time


def main() -> int:
    state_dir, fault, target, at_step = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    train_args = sys.argv[sys.argv.index("--") + 1:]
    rank = int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))

    def mark(name: str) -> None:
        path = os.path.join(state_dir, f"{name}-{rank}")
        with open(path + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(path + ".tmp", path)

    mark("pid")
    from dtnn.cli.main import main as dtnn_main
    from dtnn.engine.trainer import Trainer
    import dtnn.io.atomic as atomic

    original_step = Trainer.train_step
    armed = {"save": False}

    def train_step(self, xb, yb):
        out = original_step(self, xb, yb)
        step = self.state.step
        if step >= at_step:
            if step == at_step and rank == target:
                if fault in ("raise", "exit0"):
                    mark("fault")
                if fault == "raise":
                    raise RuntimeError(f"planted failure at step {step}")
                if fault == "exit0":
                    sys.exit(0)
                if fault == "hold-save":
                    armed["save"] = True
                mark("ready")
            time.sleep(0.02)
        return out

    original_fsync = atomic.fsync_path

    def fsync_path(path, directory=False):
        original_fsync(path, directory)
        if armed["save"] and not directory and ".tmp-" in path:
            mark("saving")
            time.sleep(120)

    Trainer.train_step = train_step
    atomic.fsync_path = fsync_path
    return dtnn_main(["train", *train_args])


if __name__ == "__main__":
    sys.exit(main())
