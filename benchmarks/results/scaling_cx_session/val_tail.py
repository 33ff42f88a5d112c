"""helper-T's int8 rows (call3: before = 3 buckets, after = 6) through the cost model
calibrated in model_reval3 (no timing)."""
import json, sys
from pathlib import Path
from dtnn.bench.costmodel import Codec, Link, ModelProfile, Oversub
from dtnn.bench.model import validate
from dtnn.bench.model_calib import calibrate_codecs
from dtnn.bench.scaling import read_records
out = Path("benchmarks/results/model_reval3")
res = json.loads((out / "model" / "model.json").read_text())
profiles = {k: ModelProfile(**v) for k, v in res["profiles"].items()}
links = {k: Link(**v) for k, v in res["links"].items()}
oversub = Oversub(**res["oversub"])
codecs = {k: None for k in res["codecs"] if res["codecs"][k] is None}
codecs.update({k: Codec(**{**v, "on_collective": {}}) for k, v in res["codec_kernels"].items()})
calibrate_codecs(codecs, out / "codec_shm_n2_warm.json", out / "codec_shm_n2_coll.json")
files = sorted(Path("benchmarks/results/scaling_cx_tail/call3").glob("*/scaling.jsonl"))
records = [r for f in files for r in read_records(f)]
for r in validate(records, profiles, codecs, links, oversub):
    if r["compress"].startswith("int8"):
        print(r["compress"][:30], "measured %.1f predicted %.1f error %+.1f %%" % (
            1e3 * r["measured"], 1e3 * r["predicted"], 100 * r["error"]))
print("per file: as cut (the row's own count) / with the other cut")
for f in files:
    recs = list(read_records(f))
    n = [r.get("buckets") for r in recs if r.get("compress", "").startswith("int8")]
    own = [r for r in validate(recs, profiles, codecs, links, oversub) if r["compress"].startswith("int8")]
    flip = [dict(r, buckets=(3 if r.get("buckets") == 6 else 6)) if r.get("compress", "").startswith("int8") else r for r in recs]
    other = [r for r in validate(flip, profiles, codecs, links, oversub) if r["compress"].startswith("int8")]
    for a, b in zip(own, other):
        print(f.parent.name, "buckets", n, "measured %.1f own-cut %+.1f %% other-cut %+.1f %% (exposed measured %.1f, predicted %.1f / %.1f)" % (
            1e3 * a["measured"], 100 * a["error"], 100 * b["error"], 1e3 * (a["split_measured"]["exposed"] or 0),
            1e3 * a["split_predicted"]["exposed"], 1e3 * b["split_predicted"]["exposed"]))
