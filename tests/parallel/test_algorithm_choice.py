"""The per-size algorithm rule and the candidate collectives of a compressor
(``dtnn.parallel.collectives.choice``), without MPI: topologies are plain records."""
from types import SimpleNamespace

import pytest

from dtnn.parallel.collectives.choice import (SMALL_BUCKET_BYTES, candidate_collectives,
                                              choose_algorithm, hier_possible)


def topo(nodes, per_node, uniform=True):
    return SimpleNamespace(size=nodes * per_node, nodes=nodes, local_size=per_node,
                           multi_node=nodes > 1, uniform=uniform)


BIG = 9 << 20


@pytest.mark.parametrize("t, nbytes, expected", [
    (topo(1, 4), BIG, "mpi"),                       # one node: MPI's shared memory
    (topo(4, 1), BIG, "ring"),                      # one rank per host: our ring
    (topo(4, 1), SMALL_BUCKET_BYTES - 1, "mpi"),    # latency-bound: MPI's
    (topo(2, 2), BIG, "hier"),                      # several ranks per host
    (topo(2, 2, uniform=False), BIG, "ring"),       # hier needs the same count per node
])
def test_auto_rule(t, nbytes, expected):
    assert choose_algorithm(nbytes, t) == expected


def test_explicit_choice_falls_back_where_hier_cannot_run():
    assert choose_algorithm(BIG, topo(2, 2), "mpi") == "mpi"
    assert choose_algorithm(BIG, topo(4, 1), "hier") == "ring"
    assert choose_algorithm(BIG, topo(1, 4), "hier") == "mpi"
    assert hier_possible(topo(2, 2)) and not hier_possible(topo(4, 1))


@pytest.mark.parametrize("spec, expected", [
    ("randomk:ratio=0.01", {2: ["allreduce"], 4: ["allreduce"]}),     # summable payload
    ("int8", {2: ["allgather", "qring"], 4: ["qring", "allgather"]}),  # ring from 4 ranks
    ("topk:ratio=0.01", {2: ["allgather", "gtopk", "sparse"],
                         4: ["gtopk", "allgather", "sparse"]}),
])
def test_candidate_collectives(spec, expected):
    from dtnn.compress import build_compressor
    compressor, _ = build_compressor(spec)
    for size, collectives in expected.items():
        assert candidate_collectives(compressor, size) == collectives
