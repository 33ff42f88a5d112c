"""The compressor interface, the registry and the ``name:key=value,...`` spec parser.

A compressor turns one *unit* (the compressible part of one gradient bucket: a
contiguous float32 vector plus the shapes of the tensors in it) into a *payload*
(a 1-D numpy array) and back.  It says which collective its payloads need:

``summable = True``
    payloads of all ranks can be added element-wise (fp16 values, PowerSGD's P and
    Q, random-k values with shared indices): the reducer ``Iallreduce``s them and
    decodes the *sum* once.  ``payload_dtype`` must be float32 or float16.
``summable = False``
    payloads are opaque bytes (uint8) of a size fixed by the unit (``payload_size``)
    : the reducer ``Iallgather``s them and decodes every rank's payload into the
    same output, in rank order, so every replica computes the same sum.

The calls per unit and step (the reducer makes them; users never pair compressors
with collectives by hand)::

    p = c.compress(x, unit, residual)     # residual: error-feedback memory or None
    while summable and (p2 := c.next_round(p_summed, unit)) is not None:  # PowerSGD
        p = p2 (allreduced)
    c.decompress_add(p_summed_or_one_rank, out, alpha, unit)   # out += alpha * value

With ``residual`` given, ``compress`` must leave ``residual = (x + residual_old) -
decoded(payload)`` (error feedback; ``memory.ErrorFeedback`` owns the buffers).  The
default does that with three kernel passes; compressors override it where a fused
kernel saves passes (sign, top-k, random-k).

State (``state_dict``/``load_state_dict``): anything a resumed run needs to continue
exactly (PowerSGD's Q matrices; the RNG streams are a pure function of seed, rank,
step and unit, so they need nothing but the step the reducer restores).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from dtnn.errors import ConfigError
from dtnn.registry import Registry

Shape = Tuple[int, ...]
_MASK64 = 0xFFFFFFFFFFFFFFFF


def splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def stream_key(*parts: int) -> int:
    """64-bit RNG key from (seed, rank, step, unit, ...): independent streams."""
    h = 0x6A09E667F3BCC909
    for p in parts:
        h = splitmix64(h ^ (int(p) & _MASK64))
    return h


@dataclass
class Unit:
    """One compressible vector: index (stable id), size and the tensors inside it."""
    index: int
    size: int
    #: (offset inside the unit, shape) of each tensor, in order
    tensors: List[Tuple[int, Shape]]
    #: set by the reducer before every compress call
    step: int = 0
    #: per-step scratch a multi-round compressor keeps between calls
    scratch: Dict[str, Any] = field(default_factory=dict)


class Compressor:
    """A gradient compressor: maths only (encode, decode, state); the reducer moves its
    payloads."""
    name = "base"
    #: payloads of different ranks can be summed by MPI_SUM (allreduce)
    summable = False
    #: dtype of summable payloads (float32 or float16)
    payload_dtype = np.dtype(np.float32)
    #: error feedback is on by default (biased compressors)
    biased = False
    #: the whole compressible gradient must be one unit (global top-k)
    single_bucket = False
    #: uncompressed steps before compression starts (PowerSGD's start_step)
    warmup_steps = 0
    #: any slice of a unit can be encoded as a unit of its own and decoded payloads
    #: can be re-encoded (quantisers): the quantised ring (``qring``) may carry it
    chunkable = False
    #: payloads are (index, value) entries, ``entries(payload)`` (top-k): the sparse
    #: collectives (``gtopk``, ``sparse``) may carry it
    sparse = False

    def __init__(self, **params: Any):
        if params:
            raise ConfigError(f"compressor {self.name!r}: unknown parameter(s) "
                              f"{', '.join(sorted(params))}")
        self.world_size = 1
        self.rank = 0
        self.seed = 0

    def setup(self, world_size: int, rank: int, seed: int = 0) -> None:
        """Bind to this rank of ``world_size`` and seed its random streams."""
        self.world_size, self.rank, self.seed = int(world_size), int(rank), int(seed)

    def key(self, unit: Unit) -> int:
        """The random-stream key of ``unit`` (seed, rank, step, tensor index)."""
        return stream_key(self.seed, self.rank, unit.step, unit.index)

    # --- to implement ----------------------------------------------------------------
    def payload_size(self, unit: Unit) -> int:
        """Payload elements (of ``payload_dtype`` if summable, else bytes)."""
        raise NotImplementedError

    def compress_plain(self, x: np.ndarray, unit: Unit) -> np.ndarray:
        """The payload of ``x`` without error feedback (subclasses implement it)."""
        raise NotImplementedError

    def decompress_add(self, payload: np.ndarray, out: np.ndarray, alpha: float,
                       unit: Unit) -> None:
        """``out += alpha * decoded(payload)`` (for summable payloads: of the sum)."""
        raise NotImplementedError

    def decompress_set(self, payload: np.ndarray, out: np.ndarray, alpha: float,
                       unit: Unit) -> None:
        """``out = alpha * decoded(payload)``, the same bits as ``out.fill(0)`` followed
        by ``decompress_add`` (dense decoders override it to write in one pass instead
        of zero-filling first)."""
        out.fill(0.0)
        self.decompress_add(payload, out, alpha, unit)

    #: ``decompress_window`` is implemented (dense quantisers: the quantised ring and
    #: the allgather decode straight into the flat gradient's ranges)
    windowed = False

    def decompress_window(self, payload: np.ndarray, unit: Unit, s0: int, e0: int,
                          out: np.ndarray, alpha: float, base: Optional[np.ndarray] = None,
                          accumulate: bool = False) -> None:
        """Elements [s0, e0) of the decoded unit into ``out`` (``e0 - s0`` elements):
        ``out = base + alpha * v`` with ``base``, else ``out += alpha * v``
        (``accumulate``) or ``out = alpha * v`` -- the same bits as the slice of
        ``decompress_add`` / ``decompress_set`` on the whole unit."""
        raise NotImplementedError(f"{self.name} has no windowed decode")

    def hop_format(self, unit: Unit, ef: bool):
        """The fused quantised-ring kernels' view of this compressor's payload for
        ``unit`` (``kernels.qring_hop`` / ``decode_pieces``): ``(kind, chunk, levels,
        stochastic, norm, encodes)``, ``encodes`` False when the hop kernel cannot
        re-encode it (error feedback other than sign's), or None (not that format:
        the ring uses compress / decompress_window)."""
        return None

    # --- provided --------------------------------------------------------------------
    def compress(self, x: np.ndarray, unit: Unit,
                 residual: Optional[np.ndarray] = None) -> np.ndarray:
        """The payload of ``x`` (+ error-feedback residual when ``memory`` is given; the new
        residual is kept there)."""
        if residual is None:
            return self.compress_plain(x, unit)
        residual += x
        payload = self.compress_plain(residual, unit)
        self.decompress_add(self._local(payload), residual, -1.0, unit)
        return payload

    def _local(self, payload: np.ndarray) -> np.ndarray:
        """The payload as this rank alone would decode it (summable compressors with
        pre-scaling override)."""
        return payload

    def next_round(self, summed: np.ndarray, unit: Unit) -> Optional[np.ndarray]:
        """Multi-round compressors (PowerSGD): the next payload from the summed one, or None
        when done."""
        return None

    def decompress(self, payload: np.ndarray, unit: Unit) -> np.ndarray:
        """decoded(payload) as a new float32 vector (tests, tools)."""
        out = np.zeros(unit.size, np.float32)
        self.decompress_add(payload, out, 1.0, unit)
        return out

    def state_dict(self) -> Dict[str, Any]:
        """State that must survive a checkpoint (e.g. PowerSGD's Q); {} when stateless."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore ``state_dict()``."""
        pass

    def describe(self) -> str:
        """The spec string that builds this compressor."""
        return self.name


class PackedChunks(Compressor):
    """A payload of one float32 per chunk, then ``per_byte`` values packed into each
    byte (terngrad: 4, sign: 8).  ``chunk`` = 0 or >= n: one chunk for the whole
    tensor, rounded up to a multiple of ``per_byte``."""
    per_byte = 8

    def __init__(self, chunk: int = 512):
        super().__init__()
        chunk = int(chunk)
        if chunk < 0 or chunk % self.per_byte:
            raise ConfigError(f"{self.name}: chunk must be 0 or a positive multiple of "
                              f"{self.per_byte}, got {chunk}")
        self.chunk = chunk

    def _chunk(self, n: int) -> int:
        c, p = self.chunk, self.per_byte
        if c <= 0 or c >= n:
            c = max(p, ((n + p - 1) // p) * p)
        return c

    def _nchunks(self, n: int) -> int:
        c = self._chunk(n)
        return (n + c - 1) // c

    def payload_size(self, unit):
        return 4 * self._nchunks(unit.size) + (unit.size + self.per_byte - 1) // self.per_byte

    def decompress_window(self, payload, unit, s0, e0, out, alpha, base=None,
                          accumulate=False):
        from dtnn.compress import kernels as K
        n, nc = unit.size, self._nchunks(unit.size)
        K.decode_window(self.name, payload[4 * nc:], n, payload[:4 * nc].view(np.float32),
                        self._chunk(n), alpha, 1.0, s0, e0, out, base, accumulate)


# --- registry -------------------------------------------------------------------------
COMPRESSORS = Registry("compressor")


def register(name: str):
    """Class decorator: ``@register("topk")`` makes the compressor known by name."""
    def deco(cls):
        cls.name = name
        return COMPRESSORS.register(name)(cls)
    return deco


def _value(text: str) -> Any:
    t = text.strip()
    low = t.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for conv in (int, float):
        try:
            return conv(t)
        except ValueError:
            pass
    return t


def parse_spec(spec: str) -> Tuple[str, Dict[str, Any]]:
    """``"topk:ratio=0.01,ef=true"`` -> ("topk", {"ratio": 0.01, "ef": True})."""
    text = (spec or "none").strip()
    name, _, rest = text.partition(":")
    name = name.strip().lower()
    params: Dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        if "=" not in item:
            raise ConfigError(f"compression spec {spec!r}: expected key=value, got {item!r}")
        k, v = item.split("=", 1)
        params[k.strip().lower()] = _value(v)
    return name, params


def build_compressor(spec: str) -> Tuple[Optional[Compressor], bool]:
    """(compressor or None for "none", error feedback on?) from a spec string.
    ``ef=true|false`` overrides the compressor's default (on for biased ones)."""
    from dtnn.compress import registry  # noqa: F401  (registers the built-ins)
    name, params = parse_spec(spec)
    ef = params.pop("ef", None)
    factory = COMPRESSORS.get(name)  # ConfigError naming the choices if unknown
    if name == "none":
        if params:
            raise ConfigError(f"compressor 'none' takes no parameters, got {params}")
        return None, False
    import inspect
    accepted = [k for k, p in inspect.signature(factory).parameters.items()
                if k != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in params:
        if key not in accepted:
            known = ", ".join(accepted + ["ef"])
            raise ConfigError(f"compression spec {spec!r}: compressor {name!r} has no "
                              f"parameter {key!r} (it takes: {known})")
    try:
        comp = factory(**params)
    except (TypeError, ValueError) as exc:
        text = " ".join(str(exc).split())
        words = [k for k, v in params.items() if isinstance(v, str) and repr(v) in text]
        if words:  # float("abc") inside the compressor: name the parameter instead
            text = f"{words[0]}={params[words[0]]!r} is not a number"
        raise ConfigError(f"compression spec {spec!r}: {text}") from None
    use_ef = comp.biased if ef is None else bool(ef)
    return comp, use_ef


def check_spec(spec: str) -> None:
    """ConfigError unless ``spec`` names a registered compressor with valid options."""
    build_compressor(spec)
