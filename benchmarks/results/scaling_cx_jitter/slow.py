"""Slow steps (> the row's median + 5 ms on that rank) against the others: python slow.py RUN_DIR...
involuntary / voluntary context switches, minor faults, GC per step; which rows."""
import json, statistics as st, sys
from collections import Counter
slow, norm = [], []
for d in sys.argv[1:]:
    for r in (0, 1):
        S = json.load(open(f"{d}/trace/rank{r}.json"))["steps"]
        i = 0
        while i + 25 <= len(S):
            b = S[i:i + 25]
            if len({s[0] for s in b}) > 1:
                i += 1
                continue
            t = b[5:]
            ms = [1e3 * (s[2] - s[1]) for s in t]
            m = st.median(ms)
            for s, x in zip(t, ms):
                (slow if x > m + 5 else norm).append((x - m, s[9], s[8], s[6], s[4], s[0]))
            i += 25
f = lambda L, k: st.mean(s[k] for s in L)
print(f"steps: {len(slow)} slow, {len(norm)} others")
print(f"per step, slow vs others: involuntary switches {f(slow, 1):.2f} vs {f(norm, 1):.2f}; "
      f"voluntary {f(slow, 2):.2f} vs {f(norm, 2):.2f}; minor faults {f(slow, 3):.1f} vs "
      f"{f(norm, 3):.1f}; GC collections {f(slow, 4):.2f} vs {f(norm, 4):.2f}")
print(f"slow steps' excess over the median: median {st.median(s[0] for s in slow):.1f} ms, "
      f"max {max(s[0] for s in slow):.1f} ms; with no involuntary switch: "
      f"{sum(s[1] == 0 for s in slow)}")
print("by row:", dict(Counter(s[5].split(':')[0] for s in slow)))
