"""Per-rank step statistics from trace/sitecustomize.py's dumps (issue #17, helper-J).

python steps.py RUN_DIR...   (each with trace/rank0.json, trace/rank1.json)
Per row (ref = exchange-skipped reference, else the compressor) and rank, over the
timed steps (the last 20 of each 25-step block): median and mean step ms, slow steps
(> median of the row + 5 ms), GC pauses (ms in timed steps, gen-2 count), minor page
faults / step, involuntary context switches / step, CPUs the rank ended steps on;
and between ranks: mean per-step difference of step time (rank1 - rank0, ms) over the
blocks where the ranks ran alone (ref) or coupled.
"""
import json, statistics as st, sys
from collections import defaultdict


def blocks(steps):
    """Consecutive steps of one row, split into 25-step blocks (warm-up 5 + 20 timed)."""
    out, cur = [], []
    for s in steps:
        if cur and s[0] != cur[-1][0]:
            out.append(cur); cur = []
        cur.append(s)
    if cur:
        out.append(cur)
    res = []
    for b in out:
        for i in range(0, len(b) - len(b) % 25, 25):
            res.append(b[i:i + 25][5:])
    return res


agg = defaultdict(lambda: defaultdict(list))   # (row, rank) -> field -> values
pair = defaultdict(list)                        # row -> rank1 - rank0 per step (ms)
for d in sys.argv[1:]:
    ranks = [json.load(open(f"{d}/trace/rank{r}.json"))["steps"] for r in (0, 1)]
    bl = [blocks(s) for s in ranks]
    for b0, b1 in zip(*bl):
        row = b0[0][0]
        for r, b in ((0, b0), (1, b1)):
            ms = [1e3 * (s[2] - s[1]) for s in b]
            med = st.median(ms)
            A = agg[(row, r)]
            A["step"] += ms
            A["slow"].append(sum(m > med + 5 for m in ms))
            A["gc_ms"].append(1e3 * sum(s[3] for s in b))
            A["gc2"].append(sum(s[5] for s in b))
            A["minflt"] += [s[6] for s in b]
            A["nivcsw"] += [s[9] for s in b]
            A["nvcsw"] += [s[8] for s in b]
            A["cpus"] += [s[10] for s in b]
        pair[row] += [1e3 * ((s1[2] - s1[1]) - (s0[2] - s0[1])) for s0, s1 in zip(b0, b1)]
print(f"{'row':<10} rk  n  med   mean  slow/20  gc_ms/20 gen2  minflt  nivcsw nvcsw  cpus")
for (row, r), A in sorted(agg.items()):
    cpus = defaultdict(int)
    for c in A["cpus"]:
        cpus[c] += 1
    print(f"{row:<10} {r}  {len(A['slow']):>2} {st.median(A['step']):5.1f} {st.mean(A['step']):5.1f} "
          f"{st.mean(A['slow']):5.2f}  {st.mean(A['gc_ms']):6.2f}  {sum(A['gc2']):3d} "
          f"{st.mean(A['minflt']):7.1f} {st.mean(A['nivcsw']):6.2f} {st.mean(A['nvcsw']):6.2f}  "
          f"{dict(sorted(cpus.items()))}")
print("rank1 - rank0 step ms per step (same step index): mean, median")
for row, v in sorted(pair.items()):
    print(f"  {row:<10} {st.mean(v):+6.2f} {st.median(v):+6.2f}  (n {len(v)})")
