"""efficiency_paired per side and compressor: python pairs.py CALL_DIR
(rows of CALL_DIR/{before,after}_N/scaling.jsonl; mean, min-max, and the mean of the
per-pair after - before differences)."""
import glob, json, re, statistics as st, sys
from collections import defaultdict
E = defaultdict(dict)   # (side, comp) -> pair -> row
for f in glob.glob(f"{sys.argv[1]}/*_*/scaling.jsonl"):
    side, pair = re.search(r"/(\w+?)_(\d+)/scaling", f).groups()
    for line in open(f):
        r = json.loads(line)
        if r.get("kind") == "throughput" and r.get("mode") == "overlap":
            E[(side, r["compress"].split("|")[0])][int(pair)] = r
comps = sorted({c for _, c in E})
print(f"{'compressor':<20} {'side':<7} n  eff_paired mean (min-max)   step/ref ms   codec exposed hook ms")
for c in comps:
    for side in ("before", "after"):
        rows = E.get((side, c), {})
        if not rows:
            continue
        e = [r["efficiency_paired"] for r in rows.values()]
        g = lambda k: 1e3 * st.mean(r[k] for r in rows.values())
        print(f"{c:<20} {side:<7} {len(e)}  {st.mean(e):.3f} ({min(e):.3f}-{max(e):.3f})"
              f"   {g('step_seconds'):5.1f}/{g('reference_step_seconds'):5.1f}"
              f"   {g('codec_seconds'):4.1f} {g('exposed_comm_seconds'):4.1f} {g('hook_mpi_seconds'):4.1f}")
    b, a = E.get(("before", c), {}), E.get(("after", c), {})
    d = [a[p]["efficiency_paired"] - b[p]["efficiency_paired"] for p in a if p in b]
    if d:
        print(f"{'':<20} after - before, per pair: {st.mean(d):+.3f} "
              f"({min(d):+.3f}..{max(d):+.3f})")
