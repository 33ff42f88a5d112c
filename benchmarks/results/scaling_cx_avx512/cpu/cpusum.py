# per spec: wall per step, sum of the ranks' process CPU per step, machine busy (2 cores) from /proc/stat
import gzip, json, sys, numpy as np
d = json.load((gzip.open if sys.argv[1].endswith(".gz") else open)(sys.argv[1], "rt"))
print("spec | wall ms/step | ranks' CPU ms/step (sum) | per rank | machine: user+nice, system, softirq, idle ms/step (2 cores = 2x wall)")
for spec in d[0]:
    n = d[0][spec]["nsteps"]
    wall = max(r[spec]["wall"] for r in d) / n
    cpu = [r[spec]["cpu"] / n for r in d]
    st = np.array(d[0][spec]["stat"]) * 10.0 / n   # ticks of 10 ms
    print(f"{spec[:38]:38s} | {1e3*wall:6.1f} | {1e3*sum(cpu):6.1f} | {' '.join('%.1f' % (1e3*c) for c in cpu)} | "
          f"{st[0]+st[1]:.1f}, {st[2]:.1f}, {st[6]:.1f}, {st[3]+st[4]:.1f}")
