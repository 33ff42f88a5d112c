"""Counter-based random numbers across ranks: a stream without the rank gives every rank
the same numbers (random-k's shared indices), one with the rank gives each its own, and
random-k's compressor draws the same indices on every rank without communicating."""
import numpy as np
import pytest

from dtnn import rng
from dtnn.compress import build_compressor
from dtnn.compress.base import Unit

from ._helpers import assert_all, world

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(60, method="thread")]


def test_shared_streams_agree_and_rank_streams_differ():
    comm = world()
    shared = rng.sample_sorted(rng.stream(7, "shared", 3, 1), 402_442, 4025)
    own = rng.uniform_f32(rng.stream(7, "own", 3, 1, comm.rank), 1000)
    table = comm.allgather((shared.tobytes(), own.tobytes()))
    assert_all(all(t[0] == table[0][0] for t in table), "shared stream identical on all ranks")
    assert_all(len({t[1] for t in table}) == comm.size, "per-rank streams all different")


def test_randomk_indices_identical_on_all_ranks():
    comm = world()
    comp, _ = build_compressor("randomk:ratio=0.01")
    comp.setup(comm.size, comm.rank, 5)
    unit = Unit(3, 50_000, [(0, (50_000,))])
    draws = []
    for step in range(4):
        unit.step = step
        draws.append(comp.indices(unit).tobytes())
    table = comm.allgather(draws)
    assert_all(all(t == table[0] for t in table), "random-k indices identical on all ranks")
    assert_all(len(set(draws)) == len(draws), "random-k indices change with the step")
