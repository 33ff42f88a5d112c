"""Importance criteria for feature maps and hidden units, in a registry.

A criterion returns one raw score per unit of every prunable group (higher = more
important); ``dtnn.prune.select`` normalises them per layer and removes the lowest.

* ``taylor`` (Molchanov et al., 2017): the first-order Taylor estimate of the change of
  the loss when a unit's output is set to zero,
  ``Θ = | mean over batch and positions of (a · ∂L/∂a) |`` per mini-batch, summed over
  ``batches`` mini-batches. ``a`` is the output of the group's tap (after the conv and
  its BatchNorm, before the nonlinearity; see ``dtnn.prune.graph``). Under MPI each
  rank's per-channel sums are allreduced every mini-batch, so Θ is the one of the
  global batch and every replica ranks the units identically.
* ``l1`` (Li et al., 2017): the L1 norm of each filter (conv) or weight column (dense).
  Data-free.
* ``random``: uniform scores from a generator seeded by (seed, pruning step): the same
  on every rank with no communication.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Tuple

import numpy as np

from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.prune.graph import Group
from dtnn.registry import Registry

CRITERIA = Registry("pruning criterion")

Batches = Iterable[Tuple[np.ndarray, np.ndarray]]


class Criterion:
    #: needs forward/backward passes over training batches
    uses_data = False

    def scores(self, model, groups: List[Group], batches: Batches, ctx,
               step: int = 0, seed: int = 0) -> Dict[int, np.ndarray]:
        raise NotImplementedError


@CRITERIA.register("taylor")
class Taylor(Criterion):
    uses_data = True

    def scores(self, model, groups, batches, ctx, step=0, seed=0):
        taps = {g.tap: g.producer for g in groups}
        totals = {g.producer: np.zeros(g.units, np.float64) for g in groups}
        loss_fn = SoftmaxCrossEntropy()
        for xb, yb in batches:
            sums, counts = taylor_sums(model, taps, xb, yb, loss_fn)
            order = sorted(sums)
            flat = np.concatenate([sums[p] for p in order])
            # mean over ranks of the local sums = sum over the global batch of
            # a * dL_global/da (each rank's dL/da is for its own mean loss)
            flat = ctx.allreduce_sum(flat) / ctx.size
            offset = 0
            for p in order:
                n = sums[p].size
                totals[p] += np.abs(flat[offset:offset + n]) / (counts[p] * ctx.size)
                offset += n
        return totals


def taylor_sums(model, taps: Dict[int, int], xb: np.ndarray, yb: np.ndarray,
                loss_fn=None):
    """One training-mode forward/backward; for each tap layer (mapped to its producer),
    the per-unit sum over batch and positions of ``output * dLoss/doutput`` (float64)
    and the number of (sample, position) terms summed. Parameter gradients are
    computed as a side effect and left in ``model.flat_grads``."""
    loss_fn = loss_fn or SoftmaxCrossEntropy()
    acts: Dict[int, np.ndarray] = {}
    x = xb
    for i, layer in enumerate(model.layers):
        x = layer.forward(x, training=True)
        if i in taps:
            acts[i] = np.array(x, dtype=np.float32, copy=True)
    loss_fn.forward(x, yb)
    dy = loss_fn.backward()
    sums, counts = {}, {}
    for i in reversed(range(len(model.layers))):
        if i in acts:
            a = acts.pop(i)
            prod = (a.astype(np.float64) * dy).reshape(a.shape[0], a.shape[1], -1)
            sums[taps[i]] = prod.sum(axis=(0, 2))
            counts[taps[i]] = prod.shape[0] * prod.shape[2]
        dy = model.layers[i].backward(dy)
    return sums, counts


@CRITERIA.register("l1")
class L1Norm(Criterion):
    def scores(self, model, groups, batches, ctx, step=0, seed=0):
        out = {}
        for g in groups:
            w = np.abs(model.layers[g.producer].params["weight"].astype(np.float64))
            out[g.producer] = (w.reshape(w.shape[0], -1).sum(axis=1) if g.kind == "conv"
                               else w.sum(axis=0))
        return out


@CRITERIA.register("random")
class RandomScores(Criterion):
    def scores(self, model, groups, batches, ctx, step=0, seed=0):
        rng = np.random.default_rng([int(seed), int(step), 0x9E3779B9])
        return {g.producer: rng.random(g.units) for g in groups}


def normalised(scores: Dict[int, np.ndarray]) -> Dict[int, np.ndarray]:
    """Each layer's scores divided by their L2 norm (Molchanov's layer-wise
    normalisation), so layers of different scale can be ranked together."""
    out = {}
    for p, s in scores.items():
        norm = float(np.sqrt(np.sum(np.square(s))))
        out[p] = s / norm if norm > 0 else np.zeros_like(s)
    return out


def select(scores: Dict[int, np.ndarray], count: int, min_units: int = 1
           ) -> Dict[int, List[int]]:
    """The ``count`` lowest-scored units over all layers of ``scores`` (normalised per
    layer), never leaving a layer with fewer than ``min_units``; ties are broken by
    layer then unit index, so the choice is deterministic."""
    norm = normalised(scores)
    rows = [(float(v), p, u) for p, s in norm.items() for u, v in enumerate(s)]
    rows.sort()
    left = {p: s.size for p, s in norm.items()}
    chosen: Dict[int, List[int]] = {}
    for _, p, u in rows:
        if count <= 0:
            break
        if left[p] <= max(1, min_units):
            continue
        chosen.setdefault(p, []).append(u)
        left[p] -= 1
        count -= 1
    return {p: sorted(v) for p, v in chosen.items()}
