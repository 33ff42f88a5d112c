# ms per step of given symbols (substring match) in each spec window and rank: psym.py prof.json perf.data SYM...
import json, subprocess, sys, collections
rows = json.load(open(sys.argv[1])); data = sys.argv[2]; syms = sys.argv[3:]
for r in rows:
    out = subprocess.run(["perf", "script", "-i", data, "--time", "%.6f,%.6f" % (r["t_on"], r["t_off"]),
                          "--pid", str(r["pid"]), "-F", "ip,sym", "-G"], capture_output=True, text=True).stdout
    c = collections.Counter()
    for line in out.splitlines():
        for s in syms:
            if s in line:
                c[s] += 1
    print("%-38s r%d  " % (r["spec"][:38], r["rank"]) + "  ".join("%s %.2f" % (s, 1e3 * c[s] / 2000 / r["n"]) for s in syms))
