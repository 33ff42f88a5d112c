# per side and compressor: paired efficiency of every pair, mean, codec / exposed / hook means
# usage: means.py DIR (reads DIR/{before,after}_*/scaling.jsonl)
import glob, json, sys, collections
d = sys.argv[1]
for side in ("before", "after"):
    acc = collections.defaultdict(list)
    for path in sorted(glob.glob(f"{d}/{side}_*/scaling.jsonl")):
        for l in open(path):
            r = json.loads(l)
            if r.get("kind") != "throughput" or r["mode"] == "none":
                continue
            acc[r["compress"].split("|")[0]].append(
                (path.split("/")[-2], r.get("efficiency_paired") or 0, 1e3 * r["step_seconds"],
                 1e3 * (r.get("reference_step_seconds") or 0), 1e3 * (r.get("codec_seconds") or 0),
                 1e3 * (r.get("exposed_comm_seconds") or 0), 1e3 * (r.get("hook_mpi_seconds") or 0)))
    for comp, rows in acc.items():
        n = len(rows)
        mean = lambda i: sum(r[i] for r in rows) / n
        print("%-6s %-18s n=%d eff %s mean %.3f | step %.1f ref %.1f codec %.2f exposed %.2f hook %.2f" % (
            side, comp[:18], n, " ".join("%.3f" % r[1] for r in rows), mean(1), mean(2), mean(3),
            mean(4), mean(5), mean(6)))
