# per spec window and rank: perf samples (cpu-clock) by DSO and top symbols, ms per step
# usage: psum.py prof_X.json perf.data [nsym]
import json, subprocess, sys, collections
rows = json.load(open(sys.argv[1])); data = sys.argv[2]; nsym = int(sys.argv[3]) if len(sys.argv) > 3 else 12
FREQ = 2000.0
def group(dso, sym):
    if "_compress" in dso or "_rng" in dso: return "codec (dtnn _compress)"
    if dso.startswith("[kernel"): return "kernel"
    if "libmpi" in dso: return "libmpi"
    if "libfabric" in dso or "libfabric" in sym: return "libfabric"
    if "python3" in dso or "libpython" in dso or dso == "python": return "python"
    if "multiarray" in dso or "umath" in dso or "numpy" in dso: return "numpy"
    if "libc" in dso: return "libc"
    if "MPI" in dso or "mpi4py" in dso: return "mpi4py"
    if "dtnn" in dso or "_kernels" in dso: return "dtnn other kernels"
    if "openblas" in dso.lower() or "gomp" in dso: return "blas/omp"
    return "other: " + dso
for r in rows:
    out = subprocess.run(["perf", "script", "-i", data, "--time", "%.6f,%.6f" % (r["t_on"], r["t_off"]),
                          "--pid", str(r["pid"]), "-F", "ip,sym,dso", "-G"], capture_output=True, text=True).stdout
    # with -G (hide call graph) each sample is one line: "sym (dso)"
    g = collections.Counter(); s = collections.Counter(); n = 0
    for line in out.splitlines():
        line = line.strip()
        if not line: continue
        line = line.split(None, 1)[1] if " " in line else line   # drop the ip
        sym, _, dso = line.rpartition(" (")
        dso = dso.rstrip(")"); dso = dso.split("/")[-1]
        g[group(dso, sym)] += 1; s[(sym.split("+")[0], dso)] += 1; n += 1
    per = lambda c: 1e3 * c / FREQ / r["n"]
    print("== %s rank %d: %.1f ms/step sampled (user %.1f + sys %.1f by rusage)" % (
        r["spec"], r["rank"], per(n), 1e3 * r["user"] / r["n"], 1e3 * r["sys"] / r["n"]))
    print("   " + ", ".join("%s %.1f" % (k, per(v)) for k, v in g.most_common()))
    for (sym, dso), v in s.most_common(nsym):
        print("     %6.2f  %s [%s]" % (per(v), sym[:60], dso))
