"""The validation of model/model.json again with parts of the calibration changed (no
timing: the calibration inputs saved in model.json, the validation rows, the codec
files).  Run from the repository root:

    .venv/bin/python benchmarks/results/model_reval3/ablate.py benchmarks/results/model_reval3
"""
import json
import sys
from pathlib import Path

import numpy as np

from dtnn.bench.costmodel import Codec, Link, ModelProfile, Oversub
from dtnn.bench.model import validate
from dtnn.bench.model_calib import calibrate_codecs
from dtnn.bench.scaling import read_records

out = Path(sys.argv[1])
res = json.loads((out / "model" / "model.json").read_text())
profiles = {k: ModelProfile(**v) for k, v in res["profiles"].items()}
links = {k: Link(**v) for k, v in res["links"].items()}
oversub = Oversub(**res["oversub"])
files = [out / "warm/scaling/scaling.jsonl", out / "scaling_flat.jsonl",
         out / "scaling_2x2/scaling.jsonl", out / "scaling_sparse/scaling.jsonl"]
records = [r for f in files for r in read_records(f)]


def codecs_from(*benches):
    codecs = {k: None for k in res["codecs"] if res["codecs"][k] is None}
    # model.json's codec_kernels carry the run's per-collective factors (the dump shared
    # that dict with the live codec; fixed in bench_model.py since): start without them
    codecs.update({k: Codec(**{**v, "on_collective": {}}) for k, v in res["codec_kernels"].items()})
    calibrate_codecs(codecs, *benches)
    return codecs


def summary(name, rows):
    e = np.abs([r["error"] for r in rows if r["modelled"]])
    print(f"{name}: {len(e)} rows, median {100 * np.median(e):.1f} %, max {100 * e.max():.1f} %,"
          f" within 15 %: {int(np.sum(e <= 0.15))}")
    return rows


variants = {
    "as run (per-collective codec factors, hops)":
        dict(benches=[out / "codec_shm_n2_warm.json", out / "codec_shm_n2_coll.json"]),
    "one factor per compressor (the warm 2-rank file only, as before)":
        dict(benches=[out / "codec_shm_n2_warm.json"]),
    "per-collective, the 22:06 codec files (cold conv-tuner cache in the first rows)":
        dict(benches=[out / "codec_shm_n2.json", out / "codec_shm_n2_qring.json"]),
    "per-collective, --no-hops":
        dict(benches=[out / "codec_shm_n2_warm.json", out / "codec_shm_n2_coll.json"],
             hops=False),
}
table = {}
for name, v in variants.items():
    rows = validate(records, profiles, codecs_from(*v["benches"]), links, oversub,
                    hops=v.get("hops", True))
    table[name] = summary(name, rows)
print()
names = list(table)
print("| row | measured ms | " + " | ".join(f"({i + 1})" for i in range(len(names))) + " |")
print("|---|---|" + "---|" * len(names))
for i, r in enumerate(table[names[0]]):
    label = (f"{r['model'].split(':')[0]} {r['hosts']}x{r['ranks'] // r['hosts']} {r['link']} "
             f"{r['compress']} ({r['algorithm']})")
    print(f"| {label} | {1e3 * r['measured']:.0f} | "
          + " | ".join(f"{100 * table[n][i]['error']:+.1f} %" for n in names) + " |")
