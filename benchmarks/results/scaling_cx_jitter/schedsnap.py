"""Who ran on the machine in a window: python schedsnap.py SECONDS
Every task's (/proc/PID/task/TID) run time and context switches over the window (from
schedstat and status), with the CPU it last ran on; the top ones by run time."""
import glob, sys, time


def snap():
    out = {}
    for d in glob.glob("/proc/[0-9]*/task/[0-9]*"):
        try:
            run, wait, n = open(f"{d}/schedstat").read().split()
            comm = open(f"{d}/comm").read().strip()
            stat = open(f"{d}/stat").read().rsplit(")", 1)[1].split()
            status = open(f"{d}/status").read()
            vol = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
            inv = int(status.split("nonvoluntary_ctxt_switches:")[1].split()[0])
            out[d] = (comm, int(run), int(wait), int(n), int(stat[36]), vol, inv)
        except (OSError, IndexError, ValueError):
            pass
    return out


a = snap()
t = float(sys.argv[1])
time.sleep(t)
b = snap()
rows = []
for k, v in b.items():
    u = a.get(k, (v[0], 0, 0, 0, v[4], 0, 0))
    rows.append((v[1] - u[1], v[2] - u[2], v[3] - u[3], v[5] - u[5], v[6] - u[6], v[4], v[0], k))
rows.sort(reverse=True)
print(f"window {t:.0f} s: run ms, wait ms, switches, voluntary, involuntary, last cpu, task")
for r in rows[:25]:
    if r[0] <= 0 and r[2] <= 0:
        break
    print(f"{r[0] / 1e6:9.1f} {r[1] / 1e6:8.1f} {r[2]:7d} {r[3]:7d} {r[4]:6d}  cpu{r[5]}  {r[6]}  {r[7]}")
