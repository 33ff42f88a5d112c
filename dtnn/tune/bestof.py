"""BestOf: pick the fastest of several interchangeable functions, online.

A ``BestOf`` holds named alternatives with the same signature and one tuning state per
*problem key* (any hashable; for convolutions the geometry, dtype, threads and mode).
While a key is unsettled it times the real calls it is given, round-robin over the
alternatives still in the race:

* the first ``warmup`` calls of each alternative are round 0 (allocation, first touch);
  they only serve to drop gross losers (``gross_ratio`` x the best);
* after every complete round the per-alternative statistic (median of the samples, or a
  low percentile) is computed -- reduced over the ranks of the job (or node) when a
  communicator is given (MAX: the slowest rank decides, so no rank straggles), which makes
  every rank prune and decide identically;
* from round ``prune_after`` on, alternatives slower than ``prune_ratio`` x the best are
  dropped; after ``rounds`` rounds (or when one alternative is left) the winner is fixed.

After the decision ``choose(key)`` returns the winner straight from a dict, and
``__call__`` calls it without timing: negligible overhead.

Two ways to use it:

* ``bo(key, *args)`` -- choose, time and record one call (plain functions);
* ``name = bo.choose(key)`` ... run it (possibly in several pieces, e.g. a forward and
  its backward) ... ``bo.record(key, name, seconds)`` -- grouped choices.

Nested choices: ``record(..., valid=False)`` (or an ``inner_settled(name, key)`` hook
returning False) means "this alternative is still tuning its own inner choice": the
sample is not counted and the alternative keeps its turn, so an inner BestOf settles
before its parent compares it with the others.

Decisions can be cached on disk (``dtnn.tune.cache.TuneCache``) and reused by later
runs; ``force`` pins one alternative.

What makes it safe as a default:

* accuracy screen: before a key is tuned, ``screen(key, names)`` (optional) returns
  each alternative's numerical error on the real call's data; alternatives above
  ``max_error`` are excluded for that key (never the default), errors MAX-reduced over
  the node so every rank excludes the same ones;
* tuning budget: ``budget`` (a ``TuningBudget``) sums the tuning cost (time beyond the
  best alternative) of every accounted tuner in the process; once it is over its
  limit, keys being tuned decide at the end of their current round on what they have
  measured and new keys take the default.  Those decisions are not cached, so a later
  run continues tuning.  The spent cost is MAX-reduced over the node with the round's
  statistics, so ranks agree on when the budget ran out.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Hashable, List, Mapping, Optional, Sequence

import numpy as np


@dataclass
class TuneState:
    key: Hashable
    alive: List[str]
    warm: Dict[str, List[float]]
    samples: Dict[str, List[float]]
    winner: Optional[str] = None
    source: str = "tuning"            # tuning | tuned | cache | forced | only
    rounds_done: int = -1             # -1: round 0 (warm-up) not complete yet
    stats: Dict[str, float] = field(default_factory=dict)
    pruned: Dict[str, int] = field(default_factory=dict)   # name -> round it was dropped
    timed_seconds: float = 0.0        # every timed call of this key (tuning phase)
    timed_calls: int = 0
    discarded: int = 0                # samples not counted (inner choice unsettled)
    labels: List[str] = field(default_factory=list)
    errors: Dict[str, float] = field(default_factory=dict)     # accuracy screen
    excluded: Dict[str, float] = field(default_factory=dict)   # name -> error > max_error
    screen_seconds: float = 0.0       # the accuracy screen's own time (all tuning cost)

    def cost(self) -> float:
        """Tuning time beyond what the best alternative so far would have taken, plus
        the accuracy screen."""
        if not self.timed_calls or not self.stats:
            return self.screen_seconds
        best = min(self.stats.values())
        return self.screen_seconds + (max(0.0, self.timed_seconds - self.timed_calls * best)
                                      if best < float("inf") else 0.0)

    @property
    def settled(self) -> bool:
        """True once a winner is chosen for this key."""
        return self.winner is not None


def _median(v: Sequence[float]) -> float:
    return float(np.median(v)) if len(v) else float("inf")


class BestOf:
    """Picks the fastest of interchangeable alternatives per problem key by timing the real
    calls (see the module docstring)."""
    def __init__(self, name: str, alternatives: Mapping[str, Callable[..., Any]] | Sequence[str],
                 *, default: Optional[str] = None, rounds: int = 5, warmup: int = 1,
                 prune_after: int = 2, prune_ratio: float = 1.5, gross_ratio: float = 4.0,
                 percentile: Optional[float] = None, clock: Callable[[], float] = time.perf_counter,
                 comm=None, cache=None, force: Optional[str] = None,
                 inner_settled: Optional[Callable[[str, Hashable], bool]] = None,
                 candidates: Optional[Callable[[Hashable], Sequence[str]]] = None,
                 screen: Optional[Callable[[Hashable, List[str]], Dict[str, float]]] = None,
                 max_error: float = 0.0, budget: Optional["TuningBudget"] = None,
                 account: bool = True):
        if isinstance(alternatives, Mapping):
            self.functions: Dict[str, Callable] = dict(alternatives)
            names = list(alternatives)
        else:
            self.functions = {}
            names = list(alternatives)
        if not names:
            raise ValueError(f"BestOf '{name}': no alternatives")
        self.name = name
        self.names = names
        self.default = default if default is not None else names[0]
        self.rounds = max(1, int(rounds))
        self.warmup = max(0, int(warmup))
        self.prune_after = max(1, int(prune_after))
        self.prune_ratio = float(prune_ratio)
        self.gross_ratio = float(gross_ratio)
        self.percentile = percentile
        self.clock = clock
        self.comm = comm
        self.cache = cache
        if force and force not in names:
            raise ValueError(f"BestOf '{name}': forced alternative '{force}' is not one of "
                             f"{names}")
        self.force = force or None
        self.inner_settled = inner_settled
        self.candidates = candidates
        self.screen = screen
        self.max_error = float(max_error)
        self.budget = budget
        if budget is not None and account:
            budget.tuners.append(self)       # nested tuners (account=False) are not summed
        self._states: Dict[Hashable, TuneState] = {}
        self._winners: Dict[Hashable, str] = {}   # fast path

    # --- state --------------------------------------------------------------------------
    def _stat(self, v: Sequence[float]) -> float:
        if not len(v):
            return float("inf")
        if self.percentile is None:
            return _median(v)
        return float(np.percentile(v, self.percentile))

    def _reduce(self, values: np.ndarray) -> np.ndarray:
        if self.comm is None:
            return values
        return np.asarray(self.comm.node_allreduce(values, "max"), dtype=np.float64)

    def state(self, key: Hashable, label: Optional[str] = None) -> TuneState:
        """The tuning state of ``key`` (created, and looked up in the cache, on first use)."""
        st = self._states.get(key)
        if st is None:
            alive = [n for n in (self.candidates(key) if self.candidates else self.names)
                     if n in self.names]
            if not alive:
                raise ValueError(f"BestOf '{self.name}': no alternative supports {key!r}")
            st = TuneState(key, alive, {n: [] for n in alive}, {n: [] for n in alive})
            self._states[key] = st
            if self.force is not None and self.force in alive:
                self._decide(st, self.force, "forced")
            elif len(alive) == 1:
                self._decide(st, alive[0], "only")
            else:
                self._from_cache(st)
                if st.winner is None:
                    self._screen(st)
        if label is not None and label not in st.labels:
            st.labels.append(label)
        return st

    def _spent(self) -> float:
        return self.budget.spent() if self.budget is not None else 0.0

    def _over_budget(self, spent: float) -> bool:
        return self.budget is not None and self.budget.exceeded(spent)

    def _from_cache(self, st: TuneState) -> None:
        entry = self.cache.get(self.name, st.key) if self.cache is not None else None
        idx = -1.0
        if entry is not None and entry.get("winner") in st.alive:
            idx = float(st.alive.index(entry["winner"]))
        # every rank of the node must agree on using the cache (or on tuning), and on
        # whether the tuning budget is spent: one MAX-reduction of (-idx, idx, spent)
        lo, hi, spent = self._reduce(np.array([-idx, idx, self._spent()]))
        if -lo != hi:
            idx = -1.0
        if idx >= 0:
            st.stats = {k: float(v) for k, v in (entry.get("stats") or {}).items()}
            self._decide(st, st.alive[int(idx)], "cache")
        elif self._over_budget(spent):
            self._decide(st, self.default if self.default in st.alive else st.alive[0],
                         "budget")

    def _screen(self, st: TuneState) -> None:
        """Drop the alternatives whose numerical error on this call's data exceeds
        max_error (node-wide MAX of every rank's errors: all ranks drop the same)."""
        if self.screen is None or self.max_error <= 0 or len(st.alive) < 2:
            return
        t0 = time.perf_counter()
        errs = self.screen(st.key, list(st.alive))
        st.screen_seconds = time.perf_counter() - t0
        local = np.array([errs.get(n, 0.0) for n in st.alive], np.float64)
        local[~np.isfinite(local)] = np.inf          # NaN (or a failed call): excluded
        for n, e in zip(list(st.alive), self._reduce(local)):
            st.errors[n] = float(e)
            if e > self.max_error and n != self.default and len(st.alive) > 1:
                st.alive.remove(n)
                st.excluded[n] = float(e)
        if len(st.alive) == 1:
            self._decide(st, st.alive[0], "only")

    def _decide(self, st: TuneState, winner: str, source: str) -> None:
        st.winner, st.source = winner, source
        self._winners[st.key] = winner
        if source == "tuned" and self.cache is not None:
            self.cache.put(self.name, st.key, {"winner": winner, "stats": st.stats})

    # --- the online protocol ----------------------------------------------------------
    def winner(self, key: Hashable) -> Optional[str]:
        """The chosen alternative for ``key``, or None while tuning."""
        return self._winners.get(key)

    def settled(self, key: Hashable) -> bool:
        """True once ``key`` has a winner."""
        w = self._winners.get(key)
        if w is not None:
            return True
        return self.state(key).settled

    def choose(self, key: Hashable, label: Optional[str] = None) -> str:
        """The alternative to run for ``key`` now (the winner, or the next one to time)."""
        w = self._winners.get(key)
        if w is not None:
            return w
        st = self.state(key, label)
        if st.winner is not None:
            return st.winner
        # round-robin: the alternative with the fewest counted calls goes next
        return min(st.alive, key=lambda n: (len(st.warm[n]) + len(st.samples[n]),
                                            st.alive.index(n)))

    def record(self, key: Hashable, name: str, seconds: float, valid: bool = True) -> None:
        """Add a timing of ``name`` on ``key`` (``valid=False``: a sample not to count)."""
        st = self.state(key)
        if st.winner is not None:
            return
        st.timed_seconds += float(seconds)
        st.timed_calls += 1
        if name not in st.alive:
            return
        if valid and self.inner_settled is not None:
            valid = bool(self.inner_settled(name, key))
        if not valid:
            st.discarded += 1
            return
        if len(st.warm[name]) < self.warmup:
            st.warm[name].append(float(seconds))
        else:
            st.samples[name].append(float(seconds))
        self._maybe_end_round(st)

    def _maybe_end_round(self, st: TuneState) -> None:
        if any(len(st.warm[n]) < self.warmup for n in st.alive):
            return
        r = min(len(st.samples[n]) for n in st.alive)
        if (self.warmup == 0 and r == 0) or r <= st.rounds_done:
            return
        st.rounds_done = r
        use_warm = r == 0
        local = np.array([self._stat(st.warm[n] if use_warm else st.samples[n])
                          for n in st.alive] + [self._spent()], np.float64)
        reduced = self._reduce(local)
        stats, spent = reduced[:-1], float(reduced[-1])
        st.stats.update({n: float(s) for n, s in zip(st.alive, stats)})
        best = float(np.min(stats))
        if use_warm:
            ratio = self.gross_ratio
        elif r >= self.prune_after:
            ratio = self.prune_ratio
        else:
            ratio = None
        if ratio is not None:
            for n, s in list(zip(st.alive, stats)):
                if s > ratio * best and len(st.alive) > 1:
                    st.alive.remove(n)
                    st.pruned[n] = r
        over = self._over_budget(spent)
        if r >= self.rounds or len(st.alive) == 1 or over:
            final = {n: st.stats[n] for n in st.alive}
            self._decide(st, min(final, key=lambda n: (final[n], self.names.index(n))),
                         "tuned" if r >= self.rounds or len(st.alive) == 1 else "budget")

    def __call__(self, key: Hashable, *args, **kwargs):
        w = self._winners.get(key)
        if w is not None:
            return self.functions[w](*args, **kwargs)
        name = self.choose(key)
        t0 = self.clock()
        out = self.functions[name](*args, **kwargs)
        self.record(key, name, self.clock() - t0)
        return out

    # --- reporting ----------------------------------------------------------------------
    def report(self) -> List[Dict[str, Any]]:
        """One row per key: winner, medians per alternative, rounds, source."""
        rows = []
        for key, st in self._states.items():
            win = st.winner
            ws = st.stats.get(win) if win else None
            ds = st.stats.get(self.default)
            cost = None
            if ws is not None and st.timed_calls:
                cost = max(0.0, st.timed_seconds - st.timed_calls * ws) + st.screen_seconds
            elif st.screen_seconds:
                cost = st.screen_seconds
            rows.append({
                "tuner": self.name, "key": key_str(key), "labels": list(st.labels),
                "winner": win, "source": st.source, "default": self.default,
                "stats": {n: v for n, v in st.stats.items()},
                "pruned": dict(st.pruned), "rounds": max(0, st.rounds_done),
                "speedup_vs_default": (ds / ws) if (ws and ds and ws > 0) else None,
                "tuning_calls": st.timed_calls, "tuning_seconds": st.timed_seconds,
                "tuning_cost_seconds": cost, "discarded": st.discarded,
                "errors": dict(st.errors), "excluded": dict(st.excluded),
                "screen_seconds": st.screen_seconds,
            })
        return rows


def key_str(key: Hashable) -> str:
    """A problem key as a stable string (cache keys, reports)."""
    if isinstance(key, tuple):
        return "|".join(key_str(k) for k in key)
    if hasattr(key, "tag"):
        return key.tag()
    if hasattr(key, "__dataclass_fields__"):
        from dataclasses import astuple
        return key_str(astuple(key))
    return str(key)


class TuningBudget:
    """The tuning cost (time beyond the best alternative, summed over the keys of every
    accounted tuner) this process may spend; ``max_seconds <= 0``: no limit."""

    def __init__(self, max_seconds: float = 0.0):
        self.max_seconds = float(max_seconds)
        self.tuners: List[BestOf] = []

    def spent(self) -> float:
        """Tuning cost so far: the sum of ``TuneState.cost()`` over the accounted tuners."""
        return float(sum(st.cost() for bo in self.tuners for st in bo._states.values()))

    def exceeded(self, spent: Optional[float] = None) -> bool:
        """True once ``spent`` (default: ``spent()``) is over the limit."""
        if self.max_seconds <= 0:
            return False
        return (self.spent() if spent is None else spent) > self.max_seconds
