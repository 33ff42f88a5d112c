"""The cost model's codec calibration (``dtnn bench model --codec-from``): the codec as
the reducer spends it, per compressor and per collective."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

from dtnn.bench.costmodel import Codec, Link, transport_seconds


def calibrate_codecs(codecs: Dict[str, Optional[Codec]], *benches: Path,
                     link: Optional[Link] = None) -> Dict[str, Dict[str, Any]]:
    """Scale each codec to what the reducer really spends on it (in place).

    ``measure_codec`` times the kernels alone on one contiguous vector; inside the
    step the reducer also stages the bucket, keeps the error-feedback memory and runs
    the collective's own passes, on cold caches.  Each of ``benches`` is a ``dtnn bench
    dist`` JSON (plain ``mpiexec -n 2`` on shared memory, one rank per core: no link, no
    oversubscription): its ``codec_seconds`` per row, against the model's codec time
    of the same collective and ranks, gives a factor.

    A compressor's first row (in file order) sets its factor, applied to encode,
    between and decode alike.  A row of the same compressor on another collective (a
    second file with ``--dist collective=qring``, say) is kept as that collective's
    factor relative to the first (``Codec.on_collective``): the reducer's codec is not
    the same work on every collective (the quantised ring decodes, sums and re-encodes
    each hop's chunk in one fused pass; the allgather encodes once and decodes every
    peer's payload), so one factor per compressor would carry one collective's
    overheads into the other's.  A later row of a compressor and collective already
    seen is ignored.  SparCML's own CPU (``sparse_entry``, ``sparse_pass``: timed apart)
    is taken off the measurement before the factor.  Returns the factors with what
    they came from."""
    link = link or Link(1e-6, 1e-12)
    base = {name: None if c is None else (c.encode, c.between, c.decode)
            for name, c in codecs.items()}
    out: Dict[str, Dict[str, Any]] = {}
    for bench in benches:
        data = json.loads(Path(bench).read_text())
        for row in data.get("results", []):
            spec = row.get("compress", "none").split("|")[0]
            codec = codecs.get(spec)
            if codec is None or row.get("mode") == "none" or not row.get("codec_seconds"):
                continue
            algo = row["algorithm"]
            if spec in out and (algo == out[spec]["collective"]
                                or algo in out[spec]["collectives"]):
                continue
            # the kernels alone, before any factor was applied; SparCML's own CPU
            # (``sparse_cpu``, calibrated apart) is not scaled: only what the factor scales
            kernels = Codec(**{**codec.__dict__, "on_collective": {}})
            kernels.encode, kernels.between, kernels.decode = base[spec]
            n = 4.0 * data["params"]
            _, model_codec, _ = transport_seconds(algo, n, kernels, row["ranks"], link)
            _, fixed, _ = transport_seconds(algo, n, Codec(**{
                **kernels.__dict__, "encode": 0.0, "between": 0.0, "decode": 0.0}),
                row["ranks"], link)
            measured = float(row["codec_seconds"])
            if model_codec - fixed <= 0 or measured <= fixed:
                continue
            factor = (measured - fixed) / (model_codec - fixed)
            what = {"factor": factor, "measured_ms": 1e3 * row["codec_seconds"],
                    "kernels_ms": 1e3 * model_codec, "collective": algo,
                    "ranks": row["ranks"], "source": str(bench)}
            if spec not in out:
                codec.encode *= factor
                codec.between *= factor
                codec.decode *= factor
                out[spec] = dict(what, collectives={})
            else:
                codec.on_collective[algo] = factor / out[spec]["factor"]
                out[spec]["collectives"][algo] = what
    return out


__all__ = ["calibrate_codecs"]
