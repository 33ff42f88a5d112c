# Per-rank, per-step record of `dtnn bench dist` (issue #17, helper-J), loaded through
# PYTHONPATH when DTNN_JTRACE_DIR is set: wraps dtnn.bench.dist._one_step and records
# per step its start/end (perf_counter), the row (reference = no reducer, else the
# compressor), GC pauses inside it (gc.callbacks), page faults and context switches
# (getrusage deltas) and the CPU it ended on; at exit the training conv tuner's
# winners.  One JSON per rank.  Not part of dtnn.
import atexit, builtins, gc, json, os, resource, sys, time

_DIR = os.environ.get("DTNN_JTRACE_DIR")
if _DIR:
    pc = time.perf_counter
    ST = []
    GC = {"t": 0.0, "n": 0, "gen2": 0, "start": None}

    def _gc(phase, info):
        if phase == "start":
            GC["start"] = pc()
        elif GC["start"] is not None:
            GC["t"] += pc() - GC["start"]
            GC["n"] += 1
            GC["gen2"] += info.get("generation") == 2
            GC["start"] = None
    gc.callbacks.append(_gc)

    def _cpu():
        try:
            with open("/proc/self/stat") as fh:
                return int(fh.read().rsplit(")", 1)[1].split()[36])
        except Exception:
            return -1

    def _install():
        D = sys.modules["dtnn.bench.dist"]
        f = D._one_step
        meta = {}

        def one(net, loss_fn, x, y, reducer, opt):
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            g0, n0, q0 = GC["t"], GC["n"], GC["gen2"]
            t0 = pc()
            f(net, loss_fn, x, y, reducer, opt)
            t1 = pc()
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            ST.append((reducer.options.compress if reducer is not None else "ref", t0, t1,
                       GC["t"] - g0, GC["n"] - n0, GC["gen2"] - q0,
                       r1.ru_minflt - r0.ru_minflt, r1.ru_majflt - r0.ru_majflt,
                       r1.ru_nvcsw - r0.ru_nvcsw, r1.ru_nivcsw - r0.ru_nivcsw, _cpu()))
        D._one_step = one

        def dump():
            rank = os.environ.get("PMI_RANK", os.getpid())
            win = {}
            try:
                import dtnn.tune as T
                for name, bo in T.tuners().items():
                    for st in bo._states.values():
                        win[f"{name}::{T.key_str(st.key)}"] = [st.winner, st.source]
            except Exception as exc:
                win["error"] = repr(exc)
            with open(os.path.join(_DIR, f"rank{rank}.json"), "w") as fh:
                json.dump({"steps": ST, "winners": win}, fh)
        atexit.register(dump)

    _imp = builtins.__import__
    _done = [False]

    def _hook(name, *a, **k):
        m = _imp(name, *a, **k)
        if not _done[0] and hasattr(sys.modules.get("dtnn.bench.dist"), "_one_step"):
            _done[0] = True
            builtins.__import__ = _imp
            _install()
        return m
    builtins.__import__ = _hook
