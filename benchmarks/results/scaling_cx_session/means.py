# mean / min / max of efficiency_paired (and codec, exposed, hook ms) per variant and compressor
import json, sys, glob, collections
d = collections.defaultdict(list)
for f in sorted(glob.glob(sys.argv[1] + "/*_*/scaling.jsonl")):
    v = f.split("/")[-2].rsplit("_", 1)[0]
    for l in open(f):
        r = json.loads(l)
        if r.get("kind") != "throughput" or r["mode"] == "none": continue
        c = r["compress"].split("|")[0].split(":")[0]
        d[(c, v)].append((r["efficiency_paired"], 1e3 * r["codec_seconds"], 1e3 * (r.get("exposed_comm_seconds") or 0),
                          1e3 * (r.get("hook_mpi_seconds") or 0), 1e3 * r["step_seconds"], 1e3 * r["reference_step_seconds"]))
order = sys.argv[2].split(",")
print("| compressor | variant | efficiency_paired mean (min-max), n | rows >= 0.9 | codec ms | exposed ms | hook ms | step / ref ms |")
print("|---|---|---|---|---|---|---|---|")
for c in ["randomk", "terngrad", "sign", "int8"]:
    for v in order:
        rows = d.get((c, v))
        if not rows: continue
        e = [r[0] for r in rows]; m = lambda i: sum(r[i] for r in rows) / len(rows)
        print(f"| {c} | {v} | {sum(e)/len(e):.3f} ({min(e):.3f}-{max(e):.3f}), {len(e)} | {sum(x >= 0.9 for x in e)} | {m(1):.1f} | {m(2):.1f} | {m(3):.1f} | {m(4):.1f} / {m(5):.1f} |")
