"""Per-rank shards of a checkpoint's compressor state (the error-feedback memory).

Under MPI every rank keeps its own error-feedback memory: as large as the model's
gradients (402k floats for simplecnn), one per rank.  Gathering them on rank 0 for each
checkpoint sent (N-1) of them through rank 0's link every epoch (on the simulated
4-host 100 Mbit/s cluster about 0.4 s, inside the time-to-accuracy window).  Instead,
each rank writes its part next to the checkpoint, at the same time as the others:

    <checkpoint>.shards/step<S>.rank<R>.h5     this rank's compressor state at step S

and the checkpoint itself (written by rank 0) records, in ``states/compressor/shards``,
every shard's file name and content digest.  The order makes it crash-safe:

1. every rank writes its shard atomically and durably (a temporary file, fsynced,
   renamed; ``dtnn.io.atomic``) under a name that carries the step, so no earlier
   shard is touched;
2. the ranks' digests go to rank 0 (a gather of a few bytes: it also means every shard
   is on disk before rank 0 goes on);
3. rank 0 commits the checkpoint (atomically), then deletes the shards of other steps.

A crash before 3 leaves the previous checkpoint and its shards in place; after it, the
new ones.  ``resolve`` (called by ``load_checkpoint``) reads every shard back into the
``rank<R>`` entries the gathered layout had, checking each digest against the
checkpoint's record, so readers and ``GradientReducer.load_state_dict`` see one format.
The shards need a file system every rank can read (as loading the checkpoint does).
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, List

import h5py

from dtnn.errors import DataError
from dtnn.io import atomic
from dtnn.io.digest import DIGEST_ATTR, content_digest
from dtnn.io.hdf5tree import read_tree, write_tree

FORMAT = "dtnn-checkpoint-shard"
#: the key of ``states["compressor"]`` that lists the shards (JSON)
KEY = "shards"
_NAME = re.compile(r"^step(\d+)\.rank(\d+)\.h5$")


def shard_dir(checkpoint: str) -> str:
    return os.fspath(checkpoint) + ".shards"


def shard_name(step: int, rank: int) -> str:
    return f"step{int(step)}.rank{int(rank)}.h5"


def write_shard(checkpoint: str, step: int, rank: int, world_size: int,
                state: Dict[str, Any]) -> Dict[str, Any]:
    """Write this rank's ``state`` (a ``write_tree`` dict) as a shard of the
    checkpoint at ``checkpoint`` for ``step``; returns its record ``{"file", "digest"}``.
    Atomic and durable; raises OSError."""
    directory = shard_dir(checkpoint)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, shard_name(step, rank))
    with atomic.atomic_path(path, durable=True) as tmp:
        with h5py.File(tmp, "w", track_order=True) as f:
            f.attrs["format"] = FORMAT
            f.attrs["step"] = int(step)
            f.attrs["rank"] = int(rank)
            f.attrs["world_size"] = int(world_size)
            write_tree(f.create_group("state", track_order=True), state)
            digest = content_digest(f)
            f.attrs[DIGEST_ATTR] = digest
    return {"file": os.path.basename(path), "digest": digest}


def record(step: int, shards: List[Dict[str, Any]]) -> str:
    """The checkpoint's entry for its shards (every rank's record, in rank order)."""
    return json.dumps({"step": int(step), "files": shards})


def resolve(checkpoint: str, state: Dict[str, Any]) -> Dict[str, Any]:
    """``state`` (a checkpoint's ``states["compressor"]``) with every shard read back
    as ``rank<R>``; a missing, damaged or foreign shard is a one-line DataError."""
    if KEY not in state:
        return state
    try:
        listing = json.loads(state[KEY])
        files = [(r["file"], r["digest"]) for r in listing["files"]]
    except (TypeError, ValueError, KeyError) as e:
        raise DataError(f"checkpoint {checkpoint}: damaged shard list ({e})") from None
    out = {k: v for k, v in state.items() if k != KEY}
    for rank, (name, digest) in enumerate(files):
        path = os.path.join(shard_dir(checkpoint), name)
        out[f"rank{rank}"] = _read_shard(path, digest, rank, int(listing["step"]))
    return out


def _read_shard(path: str, digest: str, rank: int, step: int) -> Dict[str, Any]:
    where = f"checkpoint shard {path}"
    if not os.path.exists(path):
        raise DataError(f"{where}: file not found (the checkpoint lists it; it holds "
                        f"rank {rank}'s error-feedback memory)")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise DataError(f"{where}: not a dtnn checkpoint shard")
            if (int(f.attrs.get("step", -1)) != step or int(f.attrs.get("rank", -1)) != rank
                    or f.attrs.get(DIGEST_ATTR) != digest or content_digest(f) != digest):
                raise DataError(f"{where}: does not match the checkpoint (digest, step or "
                                "rank differ): damaged or from another run")
            return read_tree(f["state"])
    except DataError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise DataError(f"{where}: damaged ({str(e).splitlines()[0]})") from None


def remove_other_steps(checkpoint: str, listing: str) -> None:
    """Delete the shards of ``checkpoint`` of steps *before* the one ``listing`` (its
    ``record``) names: called once the checkpoint holding ``listing`` is committed,
    when they are no longer referenced.  Later steps' shards are left alone: with the
    checkpoint written in the background, the other ranks may already be writing the
    next save's shards."""
    directory = shard_dir(checkpoint)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    step = int(json.loads(listing)["step"])
    for name in names:
        m = _NAME.match(name)
        if m and int(m.group(1)) < step:
            try:
                os.remove(os.path.join(directory, name))
            except OSError:
                pass
