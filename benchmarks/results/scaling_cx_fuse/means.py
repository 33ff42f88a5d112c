# per compressor: the paired efficiencies of before_<i> / after_<i> (pairs given), their
# mean and median, and the mean step / reference / codec / exposed / hook / compute ms
# usage: python means.py DIR 1 2 3 ...
import json, sys, statistics as st
d, pairs = sys.argv[1], sys.argv[2:]
rows = {}
for side in ("before", "after"):
    for p in pairs:
        for l in open(f"{d}/{side}_{p}/scaling.jsonl"):
            r = json.loads(l)
            if r.get("kind") != "throughput" or r["mode"] == "none":
                continue
            name = r["compress"].split("|")[0]
            rows.setdefault((name, side), []).append(r)
ms = lambda rs, k: 1e3 * st.mean((r.get(k) or 0) for r in rs)
for name in dict.fromkeys(n for n, _ in rows):
    for side in ("before", "after"):
        rs = rows[(name, side)]
        e = [r["efficiency_paired"] for r in rs]
        print("%-18s %-6s eff %s  mean %.3f median %.3f | step %.1f ref %.1f codec %.2f exposed %.2f "
              "hook %.2f compute %.1f" % (name, side, " ".join("%.3f" % x for x in e), st.mean(e),
                                         st.median(e), ms(rs, "step_seconds"),
                                         ms(rs, "reference_step_seconds"), ms(rs, "codec_seconds"),
                                         ms(rs, "exposed_comm_seconds"), ms(rs, "hook_mpi_seconds"),
                                         ms(rs, "compute_seconds")))
