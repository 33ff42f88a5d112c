"""``dtnn bench dist`` rows: compute-only reference, compressors, byte counts."""
import pytest

from dtnn.bench import dist
from dtnn.parallel.mpi import MPIContext

from ._helpers import assert_all, assert_same_everywhere

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(180, method="thread")]


def test_rows_per_mode_and_compressor():
    ctx = MPIContext()
    r = dist.run(ctx, "simplecnn", (1, 28, 28), 10, {"filters": 4, "hidden": 16}, batch=4,
                 steps=2, warmup=1, modes=("none", "overlap", "blocking"),
                 compress=("none", "topk:ratio=0.05", "fp16"))
    rows = [(row["mode"], row["compress"]) for row in r["results"]]
    assert_same_everywhere(rows, "row order")
    expected = [("none", "none")] + [(m, c) for c in ("none", "topk:ratio=0.05", "fp16")
                                     for m in ("overlap", "blocking")]
    assert_all(rows == expected, "rows", str(rows))
    by = {(row["mode"], row["compress"]): row for row in r["results"]}
    ref = by[("none", "none")]
    assert_all(ref["sent_bytes"] == 0 and ref["exposed_comm_seconds"] == 0.0,
               "no exchange in mode none")
    plain = by[("overlap", "none")]
    assert_all(plain["sent_bytes"] == r["grad_bytes"], "uncompressed sends the fp32 gradient",
               f"{plain['sent_bytes']} vs {r['grad_bytes']}")
    topk = by[("overlap", "topk:ratio=0.05")]
    half = by[("overlap", "fp16")]
    assert_all(topk["sent_bytes"] < r["grad_bytes"] / 5, "top-k 5% sends far fewer bytes",
               str(topk["sent_bytes"]))
    assert_all(abs(half["compression_ratio"] - 2.0) < 0.1, "fp16 halves the bytes",
               str(half["compression_ratio"]))
    for row in r["results"]:
        parts = (row["compute_seconds"] + row["exposed_comm_seconds"]
                 + row["hook_mpi_seconds"] + row["codec_seconds"])
        assert_all(row["step_seconds"] > 0 and abs(parts - row["mean_step_seconds"]) < 1e-9,
                   "the split adds up to the mean step", f"{row}")
