"""#17 uncompressed target, per row of ``dtnn bench scaling`` runs: optimal / added,
where added = the row's step - an exchange-skipped step of the same call: the call's
mode-none row ("call") and the row's own paired reference, measured right before it
("paired"); optimal = the bandwidth-optimal allreduce of the gradient, 2 (p-1)/p bytes at the
link rate (simplecnn, 4 hosts, 1 Gbit/s: 19.3 ms), with the reducer's split (ms).

    python benchmarks/defer_efficiency.py RUN/scaling.jsonl... [--link-bits 1e9]
"""
import argparse
import json

ap = argparse.ArgumentParser()
ap.add_argument("files", nargs="+")
ap.add_argument("--link-bits", type=float, default=1e9)
args = ap.parse_args()
for path in args.files:
    rows = [r for r in map(json.loads, open(path)) if r.get("kind") == "throughput"]
    refs = {(r["hosts"], r["link"]): r["step_seconds"] for r in rows if r["mode"] == "none"}
    print(f"{path}: load {rows[0]['load_average']}")
    for r in rows:
        ref = refs[(r["hosts"], r["link"])]
        if r["mode"] == "none":
            print(f"  {r['hosts']} hosts, {r['link']}: exchange-skipped {ref * 1e3:.2f} ms")
            continue
        p = r["ranks"]
        optimal = 2 * (p - 1) / p * r["grad_bytes"] * 8 / args.link_bits
        added = r["step_seconds"] - ref
        paired = r.get("reference_step_seconds")
        eff_p = f"{optimal / (r['step_seconds'] - paired):.3f}" if paired else "-"
        print(f"  {r['compress']:<62} step {r['step_seconds'] * 1e3:6.2f}  exposed "
              f"{r['exposed_comm_seconds'] * 1e3:5.2f}  compute {r['compute_seconds'] * 1e3:5.2f}"
              f"  hooks {r['hook_mpi_seconds'] * 1e3:4.2f}  optimal/added: call {optimal / added:.3f}"
              f" paired {eff_p} (ref {paired * 1e3 if paired else 0:.2f})"
              f"  ({r.get('algorithm')}, {r.get('bucket_mb')} MiB)")
        waits = r.get("deferred_waits") or {}
        if waits:   # the next forward's wait for each bucket (flat range), ms per step
            print("      deferred waits: " + ", ".join(f"[{k}] {v * 1e3:.2f}"
                                                  for k, v in waits.items()))
