"""What coupling alone costs the reference: python coupling.py RUN_DIR...
For each exchange-skipped block (20 timed steps per rank), the reference as the bench
takes it (max over ranks of the per-rank median) against the median and the mean of the
per-step max over the two ranks (a lockstep job with a free exchange: every step at the
slower rank's pace; steps paired by index)."""
import json, statistics as st, sys
ind, coup_med, coup_mean, ind_mean = [], [], [], []
for d in sys.argv[1:]:
    R = [json.load(open(f"{d}/trace/rank{r}.json"))["steps"] for r in (0, 1)]
    blocks = []
    for S in R:
        out, i = [], 0
        while i + 25 <= len(S):
            b = S[i:i + 25]
            if len({s[0] for s in b}) > 1:
                i += 1
                continue
            if b[0][0] == "ref":
                out.append([1e3 * (s[2] - s[1]) for s in b[5:]])
            i += 25
        blocks.append(out)
    for a, b in zip(*blocks):
        ind.append(max(st.median(a), st.median(b)))
        ind_mean.append(max(st.mean(a), st.mean(b)))
        m = [max(x, y) for x, y in zip(a, b)]
        coup_med.append(st.median(m))
        coup_mean.append(st.mean(m))
n = len(ind)
print(f"{n} reference blocks: max of per-rank medians {st.mean(ind):.2f} ms; median of "
      f"per-step max {st.mean(coup_med):.2f} ms (x{st.mean(ind) / st.mean(coup_med):.3f}); "
      f"means: max of per-rank means {st.mean(ind_mean):.2f}, mean of per-step max "
      f"{st.mean(coup_mean):.2f} ms (x{st.mean(ind) / st.mean(coup_mean):.3f} of the bench's reference)")
