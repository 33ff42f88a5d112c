"""Pruning under MPI: the Taylor criterion of N ranks equals the serial one on the
global batch, every rank removes exactly the same units, and the replicas stay
bit-identical through pruning and data-parallel fine-tuning."""
import hashlib

import numpy as np
import pytest

from dtnn.config import Config
from dtnn.engine.session import Datasets
from dtnn.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, PReLU, ReLU
from dtnn.models import Model
from dtnn.parallel.context import SerialContext
from dtnn.parallel.mpi import MPIContext
from dtnn.prune.criteria import CRITERIA
from dtnn.prune.graph import prunable_groups
from dtnn.prune.loop import Pruner

from ._helpers import assert_all, assert_same_everywhere, dataset, world

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]


@pytest.fixture(scope="module")
def ctx():
    return MPIContext()


def _plain(seed=0):
    layers = [Conv2D(6, 3, padding=1), ReLU(), MaxPool2D(2), Conv2D(8, 3, padding=1),
              PReLU(), Flatten(), Dense(12), ReLU(), Dense(5)]
    return Model(layers, (1, 8, 8)).build(seed)


def _bn_dropout(seed=0):
    layers = [Conv2D(6, 3, padding=1, bias=False), BatchNorm(), PReLU(), MaxPool2D(2),
              Conv2D(8, 3, padding=1), ReLU(), Flatten(), Dense(12), PReLU(), Dropout(0.3),
              Dense(5)]
    return Model(layers, (1, 8, 8)).build(seed)


def test_taylor_equals_serial_on_the_global_batch(ctx):
    model = _plain()
    ds = dataset("conv")
    groups = [g for g in prunable_groups(model) if g.prunable]
    per_rank, steps = 4, 3
    glob = [(ds.x[s * per_rank * ctx.size:(s + 1) * per_rank * ctx.size],
             ds.y[s * per_rank * ctx.size:(s + 1) * per_rank * ctx.size]) for s in range(steps)]
    mine = [(x[ctx.rank * per_rank:(ctx.rank + 1) * per_rank],
             y[ctx.rank * per_rank:(ctx.rank + 1) * per_rank]) for x, y in glob]
    taylor = CRITERIA.get("taylor")()
    ours = taylor.scores(model, groups, mine, ctx)
    ref = taylor.scores(_plain(), groups, glob, SerialContext())
    worst = max(float(np.max(np.abs(ours[p] - ref[p])) / np.max(np.abs(ref[p]))) for p in ref)
    assert_all(worst < 1e-5, "MPI Taylor == serial Taylor on the global batch", f"{worst:.3g}")


def _digest(model) -> str:
    h = hashlib.sha256(model.flat_params.tobytes())
    for key, buf in sorted(model.buffers().items()):
        h.update(buf.tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("criterion", ["taylor", "l1", "random"])
@pytest.mark.parametrize("factory", [_plain, _bn_dropout])
def test_every_rank_removes_the_same_units(ctx, criterion, factory):
    cfg = Config()
    cfg.train.batch_size = 8
    cfg.prune.criterion = criterion
    cfg.prune.keep = 0.5
    cfg.prune.step_fraction = 0.25
    cfg.prune.batches = 2
    cfg.prune.finetune_steps = 3
    cfg.prune.latency_reps = 0
    ds = dataset("conv")
    pruner = Pruner(cfg, ctx, factory(), Datasets(ds, ds, ds, None), {}, run_dir="")
    records = []
    while not pruner.state.done:
        records.append(pruner.step())
    removed = [r["removed_per_layer"] for r in records]
    assert_same_everywhere(removed, f"{criterion}: units removed per step")
    assert_same_everywhere(_digest(pruner.model), f"{criterion}: parameters and buffers")
    assert_same_everywhere(pruner.model.config_json(), f"{criterion}: architecture")
    assert_all(records[-1]["maps_kept"] <= 0.5 + 1e-9, "target reached",
               str(records[-1]["maps_kept"]))
    accs = world().allgather(records[-1]["test_accuracy"])
    assert_all(len(set(accs)) == 1, "the same (reduced) test accuracy on every rank", str(accs))
