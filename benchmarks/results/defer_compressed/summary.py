"""#17 deferred compressed exchange: per row of the pair_*/scaling.jsonl files, the
paired efficiency (reference / step, the reference measured right before the row),
step, reference, the reducer's split (ms, slowest rank) and the deferred waits per
bucket (pairs 1-4: rank 0's only; from pair 5 on every rank's, with what finish_step
itself took after backward; codec inside the waits in brackets); then the mean per
compressor and mode.

    python benchmarks/results/defer_compressed/summary.py benchmarks/results/defer_compressed/pair_*/scaling.jsonl
"""
import json
import sys
from collections import defaultdict

means = defaultdict(list)
pairs = defaultdict(dict)   # (file, (hosts, compressor)) -> {mode: efficiency}
for path in sys.argv[1:]:
    rows = [r for r in map(json.loads, open(path)) if r.get("kind") == "throughput"]
    if not rows:
        continue
    print(f"{path}: load {rows[0].get('load_average')}")
    for r in rows:
        if r["mode"] == "none":
            continue
        comp, _, opts = r["compress"].partition("|")
        mode = "deferred" if "defer_update=true" in opts else "sync"
        key = (r["hosts"], comp.split(":")[0] + ("" if r.get("bucket_mb") == 4.0
                                                  else f" {r.get('bucket_mb'):g} MiB"), mode)
        pairs[(path, key[:2])][mode] = r.get("efficiency_paired")
        eff = r.get("efficiency_paired")
        means[key].append(eff)
        ms = lambda k: 1e3 * (r.get(k) or 0.0)
        print(f"  {r['hosts']}h {comp:<18} {mode:<8} eff {eff:.3f}  step {ms('step_seconds'):5.1f}"
              f" ref {ms('reference_step_seconds'):5.1f}  exposed {ms('exposed_comm_seconds'):4.1f}"
              f" codec {ms('codec_seconds'):4.1f} hooks {ms('hook_mpi_seconds'):4.1f}"
              f" ({r.get('algorithm')}, {r.get('bucket_mb')} MiB)")
        ranks = r.get("deferred_by_rank") or [
            {"deferred_waits": r.get("deferred_waits") or {},
             "deferred_codec": r.get("deferred_codec") or {}}]
        for q, d in enumerate(ranks):
            waits, codec = d.get("deferred_waits") or {}, d.get("deferred_codec") or {}
            fin = d.get("deferred_finish") or {}
            if waits:
                print(f"      rank {q}: " + ", ".join(
                    f"[{k}] {v * 1e3:.2f} ({codec.get(k, 0.0) * 1e3:.2f})"
                    for k, v in waits.items())
                    + ("; after backward " + ", ".join(f"{k} {v * 1e3:.2f}"
                                                       for k, v in fin.items()) if fin else ""))
print("\nmean paired efficiency (n, min-max):")
for key in sorted(means):
    v = means[key]
    print(f"  {key[0]}h {key[1]:<15} {key[2]:<8} {sum(v) / len(v):.3f} (n={len(v)}, "
          f"{min(v):.3f}-{max(v):.3f}, >= 0.9: {sum(e >= 0.9 for e in v)})")
print("\ndeferred - synchronous, same call (mean, per pair):")
diffs = defaultdict(list)
for (path, key), d in pairs.items():
    if "sync" in d and "deferred" in d:
        diffs[key].append(d["deferred"] - d["sync"])
for key in sorted(diffs):
    v = diffs[key]
    print(f"  {key[0]}h {key[1]:<15} {sum(v) / len(v):+.3f}  [" +
          " ".join(f"{x:+.3f}" for x in v) + "]")
