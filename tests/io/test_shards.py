"""dtnn.io.shards: per-rank shards of a checkpoint's compressor state.  Written and
read back exactly; a checkpoint whose shards are missing, damaged or from another
step is a one-line DataError; a crash before the new checkpoint is committed keeps
the previous checkpoint loadable with its own shards.  (Under MPI, the training loop
writing them and exact resume: tests/mpi/test_resume_mpi.py.)"""
import json
import os

import numpy as np
import pytest

from dtnn.errors import DataError
from dtnn.io import shards as S
from dtnn.io.checkpoint import load_checkpoint, save_checkpoint
from dtnn.models import build_model


def _state(rank, step):
    rng = np.random.default_rng(100 * rank + step)
    return {"ef": {"u0": rng.standard_normal(50).astype(np.float32),
                   "u3": rng.standard_normal(7).astype(np.float32)},
            "compressor": {"count": np.int64(step)}}


def _save(path, step, world=3):
    """What the training loop does: shards, then the checkpoint listing them, then
    the earlier steps' shards removed."""
    records = [S.write_shard(path, step, r, world, _state(r, step)) for r in range(world)]
    entry = {"spec": "topk:ratio=0.1", "world_size": world, "steps_done": step,
             S.KEY: S.record(step, records)}
    model = build_model("simplecnn", (1, 8, 8), 3, seed=0, filters=2, hidden=4)
    save_checkpoint(path, model, step=step, epoch=1, states={"compressor": entry})
    S.remove_other_steps(path, entry[S.KEY])
    return entry


def _same(a, b):
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return np.array_equal(a, b)


def test_shards_read_back_as_the_gathered_rank_entries(tmp_path):
    path = str(tmp_path / "checkpoint.h5")
    _save(path, 5)
    comp = load_checkpoint(path).states["compressor"]
    assert S.KEY not in comp and comp["world_size"] == 3 and comp["steps_done"] == 5
    for r in range(3):
        assert _same(comp[f"rank{r}"], _state(r, 5)), r
    assert sorted(os.listdir(S.shard_dir(path))) == [f"step5.rank{r}.h5" for r in range(3)]


def test_a_new_checkpoint_removes_the_earlier_steps_shards(tmp_path):
    path = str(tmp_path / "checkpoint.h5")
    _save(path, 5)
    _save(path, 9)
    assert sorted(os.listdir(S.shard_dir(path))) == [f"step9.rank{r}.h5" for r in range(3)]
    assert _same(load_checkpoint(path).states["compressor"]["rank2"], _state(2, 9))


def test_a_crash_before_the_commit_keeps_the_previous_checkpoint(tmp_path):
    path = str(tmp_path / "checkpoint.h5")
    _save(path, 5)
    # the next save wrote two of three shards, then the job died (no new checkpoint)
    for r in range(2):
        S.write_shard(path, 9, r, 3, _state(r, 9))
    comp = load_checkpoint(path).states["compressor"]
    assert comp["steps_done"] == 5
    assert all(_same(comp[f"rank{r}"], _state(r, 5)) for r in range(3))
    # and the next committed save cleans the orphans up
    _save(path, 12)
    assert sorted(os.listdir(S.shard_dir(path))) == [f"step12.rank{r}.h5" for r in range(3)]


def test_missing_damaged_or_foreign_shards_are_one_line_errors(tmp_path):
    path = str(tmp_path / "checkpoint.h5")
    _save(path, 5)
    shard = os.path.join(S.shard_dir(path), "step5.rank1.h5")
    good = open(shard, "rb").read()

    def error():
        with pytest.raises(DataError) as err:
            load_checkpoint(path)
        msg = str(err.value)
        assert "\n" not in msg and "step5.rank1.h5" in msg
        return msg

    os.remove(shard)
    assert "file not found" in error()
    # another rank's shard in its place
    with open(shard, "wb") as fh:
        fh.write(open(os.path.join(S.shard_dir(path), "step5.rank2.h5"), "rb").read())
    assert "does not match" in error()
    # one flipped byte in the data
    raw = bytearray(good)
    at = raw.find(np.asarray(_state(1, 5)["ef"]["u0"]).tobytes()[:16])
    assert at > 0
    raw[at + 3] ^= 0xFF
    with open(shard, "wb") as fh:
        fh.write(bytes(raw))
    assert "does not match" in error()
    with open(shard, "wb") as fh:
        fh.write(good[:100])
    assert "damaged" in error() or "does not match" in error()
    with open(shard, "wb") as fh:
        fh.write(good)
    assert _same(load_checkpoint(path).states["compressor"]["rank1"], _state(1, 5))


def test_the_checkpoint_lists_shard_files_and_digests(tmp_path):
    path = str(tmp_path / "checkpoint.h5")
    entry = _save(path, 5, world=2)
    listing = json.loads(entry[S.KEY])
    assert listing["step"] == 5
    assert [r["file"] for r in listing["files"]] == ["step5.rank0.h5", "step5.rank1.h5"]
    assert all(len(r["digest"]) == 40 for r in listing["files"])


def test_a_commit_leaves_later_steps_shards_alone(tmp_path):
    """The checkpoint is committed in the background: other ranks may already write
    the next save's shards when the earlier save removes its predecessors'."""
    path = str(tmp_path / "checkpoint.h5")
    _save(path, 5)
    later = S.write_shard(path, 9, 1, 3, _state(1, 9))     # the next save, under way
    entry = _save(path, 7)                                  # an earlier commit finishing
    names = sorted(os.listdir(S.shard_dir(path)))
    assert later["file"] in names and not any(n.startswith("step5.") for n in names)
    assert json.loads(entry[S.KEY])["step"] == 7
