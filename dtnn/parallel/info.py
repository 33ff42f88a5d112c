"""``dtnn info`` under MPI: one block per rank, printed by rank 0 in rank order, and
the launcher/MPI mismatch check.

    from dtnn.parallel.info import rank_ordered_output
    text = rank_ordered_output(format_info(info))   # None on ranks != 0
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from dtnn.parallel.launcher import launcher_size, mismatch_message


def mismatch_warning(mpi_size: Optional[int] = None) -> Optional[str]:
    """The launcher/MPI mismatch explanation if the launcher announced N > 1
    processes and MPI sees a world of 1 (else None)."""
    env_size, env_var = launcher_size()
    if env_size <= 1:
        return None
    if mpi_size is None:
        from dtnn.parallel import get_context
        mpi_size = get_context().size
    if mpi_size == 1:
        return mismatch_message(env_size, env_var, mpi_size)
    return None


def rank_ordered_output(text: str, ctx=None, as_json: bool = False) -> Optional[str]:
    """Gather each rank's ``text`` to rank 0.  Rank 0 gets every block in rank order
    (headed "== rank r of N on host"; with ``as_json`` a JSON list of the per-rank
    objects); other ranks get None.  A single process gets its text back, preceded by
    a WARNING block if the launcher/MPI mismatch is detected."""
    if ctx is None:
        from dtnn.parallel import get_context
        ctx = get_context()
    warning = mismatch_warning(ctx.size)
    if ctx.size == 1:
        if warning is None:
            return text
        if as_json:
            obj: Dict[str, Any] = json.loads(text)
            obj["warning"] = warning
            return json.dumps(obj)
        return f"WARNING: {warning}\n{text}"
    blocks: Optional[List[Any]] = ctx.comm.gather((ctx.host, text), root=0)
    if ctx.rank != 0:
        return None
    if as_json:
        return json.dumps([json.loads(t) for _h, t in blocks])
    return "\n".join(f"== rank {r} of {ctx.size} on {host}\n{t}"
                     for r, (host, t) in enumerate(blocks))
