"""before/after pairs of `dtnn bench scaling` (call3.sh): per compressor, each pair's paired
efficiency and means of step / reference / codec / exposed / hook (ms).
python pairs.py DIR"""
import glob, json, os, sys
from collections import defaultdict

rows = defaultdict(lambda: defaultdict(list))
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*_[0-9]*/scaling.jsonl"))):
    side, pair = os.path.basename(os.path.dirname(path)).rsplit("_", 1)
    for line in open(path):
        r = json.loads(line)
        if r.get("kind") != "throughput" or r.get("mode") == "none":
            continue
        ms = lambda k: 1e3 * (r.get(k) or 0)
        rows[r["compress"].split("|")[0]][side].append(
            (int(pair), r.get("efficiency_paired") or 0, ms("step_seconds"),
             ms("reference_step_seconds"), ms("codec_seconds"), ms("exposed_comm_seconds"),
             ms("hook_mpi_seconds"), len(r.get("buckets") or []) if isinstance(r.get("buckets"), list) else r.get("buckets")))
mean = lambda v: sum(v) / len(v)
for spec, sides in rows.items():
    print(f"== {spec}")
    for side in ("before", "after"):
        v = sorted(sides[side])
        if not v:
            continue
        print(f"  {side:6s} eff " + " ".join(f"{x[1]:.3f}" for x in v) +
              f"  mean {mean([x[1] for x in v]):.3f} | step {mean([x[2] for x in v]):.1f} ref "
              f"{mean([x[3] for x in v]):.1f} codec {mean([x[4] for x in v]):.2f} exposed "
              f"{mean([x[5] for x in v]):.2f} hook {mean([x[6] for x in v]):.2f}")
    b, a = dict((x[0], x[1]) for x in sides["before"]), dict((x[0], x[1]) for x in sides["after"])
    d = [a[p] - b[p] for p in sorted(set(a) & set(b))]
    if d:
        print(f"  after - before per pair: " + " ".join(f"{x:+.3f}" for x in d) + f"  mean {mean(d):+.3f}")
