"""Base of the collectives that move compressed payloads (``TRANSPORTS``).

A transport is built by the ``CompressedExchange`` (``cx``) for one network topology
(every rank, or the node leaders) and starts one op per unit: the op compresses
(``cx.encode``), communicates, and decodes the average into the unit's gradient
(``cx.decode_sum`` or its own decoding) before it reports done.  Ops may start as a
later stage of a hierarchical op, so they use point-to-point messages only, with the
tags ``reserve()`` handed out in start order.
"""
from __future__ import annotations

from typing import Any, Optional

from dtnn.compress.base import Unit


class Transport:
    name = "base"
    #: tags one op needs on the network communicator
    tags_per_op = 1

    def __init__(self, cx, net, algorithm: str = "ring"):
        self.cx = cx
        self.net = net
        self.comm = net.comm
        self.size = net.size
        self.rank = net.rank
        self.compressor = cx.compressor

    def reserve(self) -> int:
        return self.net.tags(self.tags_per_op)

    def start(self, plan, tag: Optional[int] = None):
        raise NotImplementedError

    def sub_unit(self, unit: Unit, part: int, start: int, stop: int) -> Unit:
        """A piece of a unit as a unit of its own (its own RNG stream: ``index`` is
        unique per (unit, part))."""
        u = Unit((unit.index << 20) | (part & 0xFFFFF), stop - start, [(0, (stop - start,))])
        u.step = unit.step
        return u

    def describe(self) -> str:
        return self.name


__all__ = ["Transport", "Any"]
