"""Times torch's training steps for ``bench_vs_torch.py --torch-process`` in a process of its own, so
torch runs with its own defaults: started with the environment the benchmark had
*before* dtnn set its defaults (dtnn's OpenMP wait policy would otherwise be torch's
too -- both load the same libgomp -- and at 2 threads torch's step was ~20% slower
under dtnn's former PASSIVE default than with a spin, benchmarks/results/
vs_torch_default.md D).

    python benchmarks/_torch_worker.py SPEC BATCH THREADS
then lines on stdin: ``run N`` -> prints the seconds per step of N steps; ``quit``.
"""
from __future__ import annotations

import _isa_env  # noqa: F401  -- first: --isa caps (inherited in the environment)

import os
import sys
import time

import torch  # noqa: E402  -- before dtnn: its OpenMP runtime reads the clean environment

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    spec, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    import numpy as np
    from bench_vs_torch import parse_model, torch_stepper
    from dtnn.models import build_model
    from torch_twin import torch_twin
    name, opts, shape = parse_model(spec)
    opts = {k: v for k, v in opts.items() if k != "conv_algorithm"}
    model = build_model(name, shape, 10, seed=0, **{**opts, "conv_algorithm": "im2col"})
    net = torch_twin(model)
    rng = np.random.default_rng(0)          # the same batch as the benchmark's
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.int64)
    step = torch_stepper(net, x, y)
    step()
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        n = int(cmd[1])
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        print(f"{(time.perf_counter() - t0) / n!r}", flush=True)


if __name__ == "__main__":
    main()
