# defer.sh rows: per configuration and compressor, the paired efficiencies over rounds,
# mean, and mean step / codec / exposed / hook ms.  usage: python dmeans.py DIR ROUNDS
import json, sys, statistics as st
d, n = sys.argv[1], int(sys.argv[2])
for cfg in ("plain", "fuse", "defer", "deferfuse"):
    rows = {}
    for r in range(1, n + 1):
        for l in open(f"{d}/d_{cfg}_{r}/scaling.jsonl"):
            x = json.loads(l)
            if x.get("kind") == "throughput" and x["mode"] != "none":
                rows.setdefault(x["compress"].split("|")[0], []).append(x)
    for name, rs in rows.items():
        e = [x["efficiency_paired"] for x in rs]
        ms = lambda k: 1e3 * st.mean((x.get(k) or 0) for x in rs)
        print("%-9s %-8s eff %s mean %.3f | step %.1f ref %.1f codec %.2f exposed %.2f hook %.2f" % (
            cfg, name, " ".join("%.3f" % v for v in e), st.mean(e), ms("step_seconds"),
            ms("reference_step_seconds"), ms("codec_seconds"), ms("exposed_comm_seconds"),
            ms("hook_mpi_seconds")))
