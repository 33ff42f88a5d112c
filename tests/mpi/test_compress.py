"""Compressed gradient exchange under MPI: every compressor keeps the replicas
bit-identical while training simplecnn, the collective is picked per compressor,
overlap == blocking, warm-up == uncompressed, PowerSGD's pipelined second round ==
the blocking one, bit-packed QSGD sends its packed size, and checkpoint + resume
with the compressor state equals an uninterrupted run."""
import os
import shutil
import tempfile

import numpy as np
import pytest

from dtnn.data import Dataset
from dtnn.parallel.mpi import MPIContext
from dtnn.models import build_model

from ._helpers import (assert_all, dataset, dense_net, gather_params, max_rel_diff,
                       train_distributed)

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]

SPECS = ["fp16", "fp16:accumulate=fp32", "bf16", "int8", "qsgd:bits=8", "terngrad", "sign",
         "topk:ratio=0.05", "topk:ratio=0.05,scope=global", "randomk:ratio=0.1",
         "powersgd:rank=2", "sign:ef=false", "qsgd:bits=4,ef=true", "qsgd:bits=4",
         "qsgd:bits=2", "powersgd:rank=2,ef=false"]
STEPS = 4
OPTS = {"min_compress_size": 64, "check_replicas": True}


@pytest.fixture(scope="module")
def ctx():
    return MPIContext()


def simplecnn(seed):
    # a fixed convolution: bestof's timing-based pick can differ between two runs in one
    # process, and several tests here compare two runs bit for bit
    return build_model("simplecnn", (1, 12, 12), 5, seed=seed, filters=4, hidden=16,
                       conv_algorithm="im2col")


def images(n=256):
    rng = np.random.default_rng(99)
    y = rng.integers(0, 5, n)
    x = rng.standard_normal((n, 1, 12, 12)).astype(np.float32)
    x[np.arange(n), 0, y, y] += 3.0
    return Dataset(x, y, [str(c) for c in range(5)], name="tiny-images")


def _train(ctx, spec, **extra):
    opts = dict(OPTS, compress=spec, **extra)
    return train_distributed(ctx, simplecnn, images(), 8, STEPS, "sgd", opts)


@pytest.mark.parametrize("spec", SPECS)
def test_every_compressor_trains_with_identical_replicas(ctx, spec):
    model, _, reducer = _train(ctx, spec, bucket_mb=0.001)
    params = gather_params(model)
    assert_all(all(np.array_equal(p, params[0]) for p in params), f"{spec}: bit-identical")
    moved = max_rel_diff(model.flat_params, simplecnn(100).flat_params)
    assert_all(np.isfinite(model.flat_params).all() and moved > 1e-4, f"{spec}: trained",
               f"{moved:g}")
    s = reducer.stats()
    assert_all(s["steps"] == STEPS and 0 < s["sent_bytes"] < s["payload_bytes"] * 1.01,
               f"{spec}: bytes", str(s))


def test_collective_choice(ctx):
    """Summable payloads: allreduce; others: allgather on 2 ranks, from 3 on the
    collectives whose traffic does not grow with N (qring, gtopk)."""
    model = simplecnn(0)
    big = ctx.size > 2
    for spec, summable, want in [
            ("fp16", True, "allreduce"), ("powersgd", True, "allreduce"),
            ("randomk", True, "allreduce"),
            ("fp16:accumulate=fp32", False, "qring" if big else "allgather"),
            ("topk", False, "gtopk" if big else "allgather"),
            ("sign", False, "qring" if big else "allgather"),
            ("qsgd", False, "qring" if big else "allgather")]:
        reducer = ctx.make_reducer(model, {"compress": spec, "min_compress_size": 64})
        assert reducer.compressor.summable is summable, spec
        assert reducer.exchange.collective == want, (spec, reducer.exchange.collective)


def test_fp16_close_to_uncompressed(ctx):
    a, _, _ = _train(ctx, "fp16")
    b, _, _ = _train(ctx, "none")
    err = max_rel_diff(a.flat_params, b.flat_params)
    assert_all(err < 1e-2, "fp16 ~ fp32", f"{err:.3g}")


def test_warmup_steps_are_uncompressed(ctx):
    a, _, ra = _train(ctx, "sign", compress_warmup_steps=STEPS)
    b, _, _ = _train(ctx, "none")
    assert_all(np.array_equal(a.flat_params, b.flat_params), "warm-up == plain exchange")
    assert_all(ra.stats()["compression_ratio"] == 1.0, "no compression during warm-up")
    c, _, _ = _train(ctx, "powersgd:start_step=2")
    assert_all(not np.array_equal(c.flat_params, b.flat_params), "compression after start")


@pytest.mark.parametrize("spec", ["topk:ratio=0.05", "qsgd:bits=4", "powersgd:rank=1"])
def test_overlap_equals_blocking(ctx, spec):
    a, _, _ = _train(ctx, spec, bucket_mb=0.001)
    b, _, _ = _train(ctx, spec, bucket_mb=0.001, mode="blocking")
    assert_all(np.array_equal(a.flat_params, b.flat_params), f"{spec}: overlap == blocking")


@pytest.mark.parametrize("spec", ["powersgd:rank=1", "powersgd:rank=2",
                                  "powersgd:rank=2,ef=false"])
def test_powersgd_pipelined_rounds_equal_blocking(ctx, spec, monkeypatch):
    """Q's Iallreduce posted per bucket as its P arrives == one blocking Allreduce per
    bucket (the previous exchange): parameters, Q warm starts, residuals, bytes."""
    runs = {}
    opts = dict(OPTS, compress=spec, bucket_mb=0.0)  # one bucket per layer: 3 matrices
    for rounds in ("blocking", "pipelined"):
        monkeypatch.setenv("DTNN_CX_ROUNDS", rounds)
        model, _, reducer = train_distributed(ctx, dense_net, dataset("dense"), 8, STEPS,
                                              "sgd", opts)
        assert reducer.exchange.rounds == rounds
        runs[rounds] = (model, reducer)
    (a, ra), (b, rb) = runs["pipelined"], runs["blocking"]
    comp = ra.compressor
    two_round = [p for p in ra.exchange.plans if p.unit is not None and comp._layout(p.unit)[0]]
    assert_all(len(two_round) >= 3, "several buckets with a second round", str(len(two_round)))
    assert_all(np.array_equal(a.flat_params, b.flat_params), f"{spec}: pipelined == blocking",
               f"{max_rel_diff(a.flat_params, b.flat_params):.3g}")
    sa, sb = ra.exchange.local_state(), rb.exchange.local_state()
    qa, qb = sa["compressor"].get("q", {}), sb["compressor"].get("q", {})
    assert_all(sorted(qa) == sorted(qb) and len(qa) >= 2
               and all(np.array_equal(qa[k], qb[k]) for k in qa), "same Q warm starts")
    ea, eb = sa["ef"], sb["ef"]
    assert_all(_same_tree(ea, eb), "same error-feedback residuals")
    assert_all(ra.stats()["sent_bytes"] == rb.stats()["sent_bytes"], "same bytes")


def _same_tree(a, b) -> bool:
    if isinstance(a, dict):
        return (isinstance(b, dict) and sorted(a) == sorted(b)
                and all(_same_tree(a[k], b[k]) for k in a))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    return a == b


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_qsgd_sent_bytes_are_the_packed_size(ctx, bits):
    _, _, reducer = _train(ctx, f"qsgd:bits={bits}", bucket_mb=0.001)
    ex = reducer.exchange
    comp = reducer.compressor
    units = [p.unit for p in ex.plans if p.unit is not None]
    packed = sum(comp.payload_size(u) for u in units)
    norms = sum(4 * -(-u.size // comp.chunk) for u in units)
    assert_all(packed - norms == sum(-(-u.size * bits // 8) for u in units), "packed levels")
    expected = packed + ex.small_buf.nbytes + reducer._buf_pack.nbytes
    s = reducer.stats()
    assert_all(s["sent_bytes"] == expected, f"qsgd:bits={bits}: sent bytes",
               f"{s['sent_bytes']} vs {expected}")


def _shared_tmpdir(ctx):
    path = tempfile.mkdtemp(prefix="dtnn-cx-") if ctx.rank == 0 else None
    return ctx.comm.bcast(path, root=0)


@pytest.mark.parametrize("spec,bucket_mb", [("topk:ratio=0.05", 4.0), ("powersgd:rank=1", 4.0),
                                            ("qsgd:bits=4", 4.0), ("powersgd:rank=2", 0.001),
                                            ("qsgd:bits=2", 0.001)])
def test_checkpoint_resume_continues_exactly(ctx, spec, bucket_mb):
    from dtnn.config import load_config
    from dtnn.engine.session import train
    from dtnn.io.checkpoint import load_checkpoint

    root = _shared_tmpdir(ctx)

    def cfg(name, epochs):
        return load_config(None, [
            'data.source="synthetic"',
            "data.options={shape=[1,10,10],classes=3,n_train=192,n_test=48}",
            "model.options={filters=4,hidden=16}", "train.batch_size=8",
            f"train.epochs={epochs}", "output.progress=false", 'schedule.name="constant"',
            f'dist.compress="{spec}"', "dist.min_compress_size=64",
            # pinned: runs are compared bit for bit, bestof's tuning follows the clock
            'model.conv_algorithm="im2col"',
            f"dist.bucket_mb={bucket_mb}",
            f'output.run_dir="{os.path.join(root, name)}"'])

    try:
        for name, epochs, resume in [("full", 2, None), ("part", 1, None),
                                     ("part", 2, os.path.join(root, "part", "checkpoint.h5"))]:
            c = cfg(name, epochs)
            train(c, ctx, resume=resume)
        ctx.barrier()
        full = load_checkpoint(os.path.join(root, "full", "checkpoint.h5"))
        part = load_checkpoint(os.path.join(root, "part", "checkpoint.h5"))
        assert_all(full.step == part.step, "same step")
        assert_all(np.array_equal(full.model.flat_params, part.model.flat_params),
                   f"{spec}: resumed == uninterrupted",
                   f"{max_rel_diff(full.model.flat_params, part.model.flat_params):.3g}")
        st = full.states["compressor"]
        assert_all(st["world_size"] == ctx.size and f"rank{ctx.size - 1}" in st,
                   "every rank's state saved")
    finally:
        ctx.barrier()
        if ctx.rank == 0:
            shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("spec", ["randomk:ratio=0.1", "randomk:ratio=0.1,ef=false",
                                  "powersgd:rank=2", "powersgd:rank=1,ef=false"])
def test_summable_without_staging_copy_equals_staged(ctx, spec, monkeypatch):
    """Units split by small tensors (simplecnn's biases) are encoded from / decoded into
    the flat gradient ranges without a staging copy: the same bits as staging them
    (``DTNN_CX_STAGE=always``): parameters, error-feedback residuals, bytes."""
    runs = {}
    for stage in ("always", ""):
        monkeypatch.setenv("DTNN_CX_STAGE", stage)
        model, _, reducer = _train(ctx, spec, bucket_mb=4.0)
        runs[stage] = (model, reducer)
    (a, ra), (b, rb) = runs[""], runs["always"]
    assert_all(any(p.direct for p in ra.exchange.plans), "a unit took the no-copy path")
    assert_all(not any(p.direct for p in rb.exchange.plans), "staged reference")
    assert_all(np.array_equal(a.flat_params, b.flat_params), f"{spec}: no copy == staged",
               f"{max_rel_diff(a.flat_params, b.flat_params):.3g}")
    assert_all(_same_tree(ra.exchange.local_state(), rb.exchange.local_state()),
               "same error-feedback residuals")
    assert_all(ra.stats()["sent_bytes"] == rb.stats()["sent_bytes"], "same bytes")


@pytest.mark.parametrize("spec,collective", [
    ("int8", "qring"), ("qsgd:bits=8", "qring"), ("terngrad", "qring"), ("sign", "qring"),
    ("int8", "allgather"), ("terngrad", "allgather"), ("sign", "allgather")])
def test_quantised_without_staging_copy_equals_staged(ctx, spec, collective, monkeypatch):
    """qring reads its chunks from the flat gradient's ranges, adds each hop's decoded
    partial sum to them in one pass and decodes the final payloads straight into them;
    allgather decodes into them (no write-back): the same bits as staging the unit and
    copy + add (``DTNN_CX_STAGE=always``): parameters on every rank, error-feedback
    residuals, bytes."""
    runs = {}
    for stage in ("always", ""):
        monkeypatch.setenv("DTNN_CX_STAGE", stage)
        model, _, reducer = _train(ctx, spec, bucket_mb=4.0, collective=collective)
        runs[stage] = (model, reducer)
    (a, ra), (b, rb) = runs[""], runs["always"]
    staged = [p for p in ra.exchange.plans if p.staged]
    assert_all(bool(staged), "simplecnn's units are split by its biases")
    assert_all(all(p.out_direct for p in staged), "decoded into the flat ranges")
    assert_all(all(p.direct == (collective == "qring") for p in staged),
               "qring also reads the flat ranges")
    assert_all(not any(p.direct or p.out_direct for p in rb.exchange.plans),
               "staged reference")
    params = gather_params(a)
    assert_all(all(np.array_equal(p, params[0]) for p in params), "replicas bit-identical")
    assert_all(np.array_equal(a.flat_params, b.flat_params),
               f"{spec} over {collective}: no copy == staged",
               f"{max_rel_diff(a.flat_params, b.flat_params):.3g}")
    assert_all(_same_tree(ra.exchange.local_state(), rb.exchange.local_state()),
               "same error-feedback residuals")
    assert_all(ra.stats()["sent_bytes"] == rb.stats()["sent_bytes"], "same bytes")
