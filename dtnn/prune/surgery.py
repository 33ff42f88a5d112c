"""Physical removal of feature maps and hidden units: the model gets smaller.

``remove_units(model, {producer: indices})`` returns a new, built ``Model`` whose
layer configurations carry the new channel counts (so a checkpoint of it rebuilds
with ``Model.from_config``) and whose weights are the old ones with the removed
units' slices cut out of every tensor that holds them:

* the producer: conv filters ``weight[k]`` and ``bias[k]`` / dense columns
  ``weight[:, u]`` and ``bias[u]``;
* channel-wise followers: BatchNorm ``gamma``/``beta``/running statistics, channel-wise
  PReLU ``alpha`` (rows ``k*block:(k+1)*block`` after a flatten);
* the consumer: the next conv's input channels ``weight[:, k]`` or, behind a
  Flatten/global pooling, the Dense rows of each removed map's feature block.

Nothing else changes: the kept units compute exactly what they computed before, so
the pruned model equals the unpruned one with those units' outputs zeroed.
"""
from __future__ import annotations

import copy
from typing import Dict, Iterable, List, Mapping

import numpy as np

from dtnn.errors import ConfigError
from dtnn.prune.graph import Group, prunable_groups


def _rows(keep: np.ndarray, block: int) -> np.ndarray:
    """Row indices of the kept units' blocks of ``block`` consecutive rows."""
    if block == 1:
        return keep
    return (keep[:, None] * block + np.arange(block)[None, :]).ravel()


def _keep_indices(units: int, remove: Iterable[int], where: str) -> np.ndarray:
    remove = np.unique(np.asarray(list(remove), np.int64))
    if remove.size and (remove.min() < 0 or remove.max() >= units):
        raise ValueError(f"{where}: unit index out of range [0, {units})")
    keep = np.setdiff1d(np.arange(units), remove)
    if keep.size == 0:
        raise ValueError(f"{where}: cannot remove all {units} units")
    return keep


def remove_units(model, removals: Mapping[int, Iterable[int]]):
    """A new built Model without the given units; ``removals`` maps a producer layer
    index (Conv2D or hidden Dense) to the unit indices to remove. ``model`` is left
    unchanged."""
    from dtnn.models.model import Model

    groups = {g.producer: g for g in prunable_groups(model)}
    config = copy.deepcopy(model.get_config())
    params: List[Dict[str, np.ndarray]] = [dict(l.params) for l in model.layers]
    buffers: List[Dict[str, np.ndarray]] = [dict(l.buffers) for l in model.layers]
    for producer, remove in sorted(removals.items()):
        g = groups.get(int(producer))
        if g is None:
            raise ValueError(f"layer {producer} is not a Conv2D or Dense layer")
        if not g.prunable:
            raise ConfigError(f"layer {producer} ({g.kind}) cannot be pruned: {g.reason}")
        keep = _keep_indices(g.units, remove, f"layer {producer}")
        if keep.size == g.units:
            continue
        _cut_group(g, keep, config, params, buffers)
    # the builder's options no longer describe the shapes: say so in the arch record
    # (the layer configurations are what rebuilds the model)
    arch = dict(config.get("arch") or {})
    arch["pruned"] = {str(i): int(spec["config"]["out_channels"] if spec["type"] == "conv2d"
                                  else spec["config"]["units"])
                      for i, spec in enumerate(config["layers"])
                      if spec["type"] in ("conv2d", "dense")}
    config["arch"] = arch
    pruned = Model.from_config(config, seed=0)
    for layer, p, b in zip(pruned.layers, params, buffers):
        for name, value in p.items():
            np.copyto(layer.params[name], value)
        for name, value in b.items():
            np.copyto(layer.buffers[name], value)
    pruned.set_rng_states(model.rng_states())
    return pruned


def _cut_group(g: Group, keep: np.ndarray, config, params, buffers) -> None:
    i = g.producer
    spec = config["layers"][i]["config"]
    p = params[i]
    if g.kind == "conv":
        spec["out_channels"] = int(keep.size)
        p["weight"] = p["weight"][keep]
    else:
        spec["units"] = int(keep.size)
        p["weight"] = p["weight"][:, keep]
    if "bias" in p:
        p["bias"] = p["bias"][keep]
    for j, block in g.followers:
        rows = _rows(keep, block)
        spec_j = config["layers"][j]
        if spec_j["type"] == "prelu" and not spec_j["config"].get("channelwise", True):
            continue    # one shared slope
        for store in (params[j], buffers[j]):
            for name, value in store.items():
                store[name] = value[rows]
    c = params[g.consumer]
    if config["layers"][g.consumer]["type"] == "conv2d":
        c["weight"] = c["weight"][:, keep]
    else:
        c["weight"] = c["weight"][_rows(keep, g.block)]
