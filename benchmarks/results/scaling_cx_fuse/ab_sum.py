# rows of a `dtnn bench scaling` jsonl: step, paired reference, efficiencies, codec / exposed / hook
import json, sys
for path in sys.argv[1:]:
    for l in open(path):
        r = json.loads(l)
        if r.get("kind") != "throughput": continue
        ms = lambda k: 1e3 * (r.get(k) or 0)
        if r["mode"] == "none":
            print("%-60s step %.1f" % (path.split("/")[-2] + " none", ms("step_seconds"))); continue
        print("%-60s step %.1f ref %.1f eff_paired %.3f eff_job %.3f codec %.1f exposed %.1f hook %.1f" % (
            path.split("/")[-2] + " " + r["compress"][:50], ms("step_seconds"), ms("reference_step_seconds"),
            r.get("efficiency_paired") or 0, r.get("efficiency") or 0, ms("codec_seconds"),
            ms("exposed_comm_seconds"), ms("hook_mpi_seconds")))
