import json, numpy as np
import sys
D = (sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/scaling_cx_fused") + "/"
def load(d):
    rows = [json.loads(l) for l in open(D + d + "/scaling.jsonl")]
    base = {r["hosts"]: r for r in rows if r.get("framework") == "dtnn" and r.get("mode") == "none"}
    out = {}
    for r in rows:
        if r.get("framework") == "dtnn" and r.get("mode") == "overlap":
            b = base[r["hosts"]]
            out[(r["hosts"], r["compress"])] = dict(eff=r["samples_per_second"] / b["samples_per_second"],
                algo=r.get("algorithm"), step=1e3*r["step_seconds"], codec=1e3*r["codec_seconds"],
                exp=1e3*r["exposed_comm_seconds"], hook=1e3*r["hook_mpi_seconds"], comp=1e3*r["compute_seconds"],
                skip=1e3*b["step_seconds"], load=r["load_average"][0])
    return out
runs = {k: load(k) for k in ("base_1", "fused_1", "fused_2", "base_2")}
specs = ["int8", "qsgd:bits=8", "terngrad", "sign", "randomk:ratio=0.01"]
print("| exchange | hosts | collective: main pair 1, pair 2 / fused pair 1, pair 2 | efficiency main: pair 1, pair 2 | fused: pair 1, pair 2 | fused - main, mean | fused step / exchange-skipped / codec / exposed / hook ms (mean of 2) | main codec ms (mean) |")
print("|---|---|---|---|---|---|---|---|")
for h in (2, 4):
    for s in specs:
        b = [runs["base_1"][(h, s)], runs["base_2"][(h, s)]]
        f = [runs["fused_1"][(h, s)], runs["fused_2"][(h, s)]]
        m = lambda L, k: np.mean([x[k] for x in L])
        print(f"| {s} | {h} | {b[0]['algo']}, {b[1]['algo']} / {f[0]['algo']}, {f[1]['algo']} | {b[0]['eff']:.3f}, {b[1]['eff']:.3f} | {f[0]['eff']:.3f}, {f[1]['eff']:.3f} | {m(f,'eff')-m(b,'eff'):+.3f} | {m(f,'step'):.1f} / {m(f,'skip'):.1f} / {m(f,'codec'):.1f} / {m(f,'exp'):.1f} / {m(f,'hook'):.1f} | {m(b,'codec'):.1f} |")
print()
for s in ("int8|bucket_mb=1", "terngrad|bucket_mb=1", "sign|bucket_mb=1"):
    for h in (2, 4):
        r = runs["fused_2"][(h, s)]
        print(f"| {s} | {h} | {r['algo']} | {r['eff']:.3f} | {r['step']:.1f} / {r['codec']:.1f} / {r['exp']:.1f} / {r['hook']:.1f} |")
