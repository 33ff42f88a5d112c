"""The predictions table of scaling.md's subsection, from model/model.json (one rank per
core, the transfer's CPU on): communication efficiency at 2 / 16 / 64 / 256 nodes.

    .venv/bin/python benchmarks/results/model_reval3/predictions.py benchmarks/results/model_reval3/model/model.json
    (add --no-transfer-cpu: the table of a transport that takes no CPU of the ranks' cores)
"""
import json
import sys

res = json.loads(open(sys.argv[1]).read())
cpu = "--no-transfer-cpu" not in sys.argv     # the transfer without CPU (RDMA): no TCP term
rows = [r for r in res["predictions"] if r.get("ranks_per_core") == 1.0
        and r.get("transfer_cpu", True) == cpu]
specs = ["none", "int8", "sign", "topk:ratio=0.01", "randomk:ratio=0.01", "powersgd:rank=2"]
nodes = [2, 16, 64, 256]
for model in dict.fromkeys(r["model"] for r in rows):
    p = res["profiles"][model]
    print(f"{model} ({p['params']:,} parameters, step {1e3 * p['compute']:.0f} ms on one core, "
          "batch 32):\n")
    print("| link | " + " | ".join(s.split(":")[0] for s in specs) + " |")
    print("|---|" + "---|" * len(specs))
    for link in dict.fromkeys(r["link"] for r in rows):
        cells = []
        for s in specs:
            eff = {r["nodes"]: r for r in rows if r["model"] == model and r["link"] == link
                   and r["compress"] == s}
            cells.append(" / ".join(f"{eff[n]['efficiency']:.2f}" for n in nodes))
        print(f"| {link} | " + " | ".join(cells) + " |")
    print()
# which collective the tuner's pick is, where it is not the default
picks = sorted({(r["compress"], r["nodes"], r["collective"]) for r in rows
                if r["compress"].startswith("topk") and r["collective"] != "gtopk"})
print("top-k picks other than gtopk (compressor, nodes, collective):", picks[:12], "...")
