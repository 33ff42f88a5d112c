"""BatchLoader: epoch coverage, determinism, distributed equivalence, drop_last; shards."""
import numpy as np
import pytest

from dtnn.data import Augment, BatchLoader, Dataset, shard
from dtnn.errors import ConfigError


def ids_dataset(n, shape=(1, 2, 2), k=3):
    # sample i is filled with the value i, so batches reveal which samples they hold
    x = np.broadcast_to(np.arange(n, dtype=np.float32).reshape((n,) + (1,) * len(shape)),
                        (n,) + shape).copy()
    return Dataset(x, np.arange(n) % k, [str(i) for i in range(k)], "ids")


def epoch_ids(loader, e):
    out = []
    for xb, yb in loader.epoch(e):
        assert xb.dtype == np.float32 and xb.flags.c_contiguous and yb.dtype == np.int64
        ids = xb.reshape(len(xb), -1)[:, 0].astype(np.int64)
        np.testing.assert_array_equal(yb, ids % 3)       # labels travel with samples
        out.append(ids.copy())
    return out


def test_each_sample_once_per_epoch():
    ds = ids_dataset(40)
    loader = BatchLoader(ds, 8, seed=1)
    assert loader.steps_per_epoch == len(loader) == 5
    batches = epoch_ids(loader, 0)
    assert [len(b) for b in batches] == [8] * 5
    assert sorted(np.concatenate(batches).tolist()) == list(range(40))


def test_deterministic_per_seed_and_epoch():
    ds = ids_dataset(50)
    a = np.concatenate(epoch_ids(BatchLoader(ds, 10, seed=3), 2))
    b = np.concatenate(epoch_ids(BatchLoader(ds, 10, seed=3), 2))
    np.testing.assert_array_equal(a, b)
    other_epoch = np.concatenate(epoch_ids(BatchLoader(ds, 10, seed=3), 3))
    other_seed = np.concatenate(epoch_ids(BatchLoader(ds, 10, seed=4), 2))
    assert not np.array_equal(a, other_epoch) and not np.array_equal(a, other_seed)
    unshuffled = np.concatenate(epoch_ids(BatchLoader(ds, 10, shuffle=False), 7))
    np.testing.assert_array_equal(unshuffled, np.arange(50))


@pytest.mark.parametrize("world", [1, 2, 4])
@pytest.mark.parametrize("drop_last", [True, False])
def test_ranks_union_equals_single_rank_global_batch(world, drop_last):
    ds = ids_dataset(101)
    b = 6
    single = epoch_ids(BatchLoader(ds, b * world, seed=9, drop_last=drop_last), 1)
    per_rank = [epoch_ids(BatchLoader(ds, b, seed=9, drop_last=drop_last, rank=r,
                                      world_size=world), 1) for r in range(world)]
    steps = {len(p) for p in per_rank}
    assert len(steps) == 1                                  # all ranks: same step count
    n_steps = steps.pop()
    assert n_steps == (101 // (b * world) if drop_last else -(-101 // (b * world)))
    for i in range(n_steps):
        assert all(len(p[i]) == b for p in per_rank) or world == 1
        joined = np.concatenate([p[i] for p in per_rank])
        if i < len(single) and len(single[i]) == len(joined):
            np.testing.assert_array_equal(joined, single[i])
        else:  # padded last global batch (W > 1, drop_last=False): starts like the single one
            assert not drop_last and world > 1
            np.testing.assert_array_equal(joined[:len(single[i])], single[i])
            wrapped = joined[len(single[i]):]                 # ... then the epoch's start
            np.testing.assert_array_equal(wrapped, np.concatenate(single)[:len(wrapped)])


def test_drop_last_semantics():
    ds = ids_dataset(23)
    dropped = epoch_ids(BatchLoader(ds, 5, seed=0), 0)
    assert [len(b) for b in dropped] == [5, 5, 5, 5]
    assert len(set(np.concatenate(dropped))) == 20
    kept = epoch_ids(BatchLoader(ds, 5, seed=0, drop_last=False), 0)
    assert [len(b) for b in kept] == [5, 5, 5, 5, 3]       # W == 1: short last batch
    assert sorted(np.concatenate(kept).tolist()) == list(range(23))
    # W = 2, global batch 10: 3 steps, 30 slots, the 7 extra wrap to the epoch start
    parts = [epoch_ids(BatchLoader(ds, 5, seed=0, drop_last=False, rank=r, world_size=2), 0)
             for r in range(2)]
    allids = np.concatenate([np.concatenate(p) for p in parts])
    assert len(allids) == 30 and set(allids.tolist()) == set(range(23))
    with pytest.raises(ConfigError, match="global batch of 32"):
        BatchLoader(ds, 8, world_size=4)


def test_resume_mid_epoch_and_bad_arguments():
    ds = ids_dataset(60, shape=(1, 5, 5))
    loader = BatchLoader(ds, 6, seed=2, augment=Augment(shift=1, seed=3))
    full = [xb.copy() for xb, _ in loader.epoch(4)]
    tail = [xb.copy() for xb, _ in loader.epoch(4, start_step=7)]
    assert len(tail) == 3
    for a, b in zip(full[7:], tail):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loader.batch_indices(4, 7),
                                  full[7].reshape(6, -1).max(1).astype(int))
    with pytest.raises(ConfigError, match="rank 2"):
        BatchLoader(ds, 4, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="augmentation"):
        BatchLoader(Dataset(np.zeros((8, 3)), np.zeros(8, int), ["a"]), 2,
                    augment=Augment(shift=1))


def test_shard_covers_dataset_once():
    ds = ids_dataset(10)
    parts = [shard(ds, r, 4) for r in range(4)]
    assert [len(p) for p in parts] == [3, 3, 2, 2]
    np.testing.assert_array_equal(np.concatenate([p.x[:, 0, 0, 0] for p in parts]), np.arange(10))
    tiny = shard(ids_dataset(1), 1, 2)
    assert len(tiny) == 0
    assert list(BatchLoader(tiny, 4, shuffle=False, drop_last=False).epoch(0)) == []
