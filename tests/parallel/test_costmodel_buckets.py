"""The cost model cuts the buckets the reducer cuts: the same plan for every compressor
(dense payloads get smaller buckets and a small last one), and rows measured under the
plain cut are predicted with it."""
import pytest

from dtnn.bench.costmodel import ModelProfile
from dtnn.bench.model import exchange_for
from dtnn.compress import build_compressor
from dtnn.parallel.buckets import compressed_bucket_bytes, plan_buckets

from .test_bucket_payload import VGG, Layout   # vgg11_bn w0.5 groups, the reducer layout


def _profile():
    # ready: the layers in backward order (the last first), each at its own moment
    n = len(VGG)
    ready = [(4.0 * VGG[g], (n - g) / (n + 1)) for g in reversed(range(n)) if VGG[g]]
    return ModelProfile("vgg", sum(VGG), 0.05, ready)


def _reducer_plan(spec, bucket_mb):
    comp, _ = build_compressor(spec)
    cap, last = int(bucket_mb * (1 << 20)), None
    if comp is not None:
        cap, last = compressed_bucket_bytes(comp, cap)
    return plan_buckets(Layout(VGG), cap, last)


@pytest.mark.parametrize("spec", ["none", "int8", "qsgd:bits=8", "qsgd:bits=4", "terngrad",
                                  "sign", "randomk:ratio=0.01", "powersgd:rank=2"])
@pytest.mark.parametrize("bucket_mb", [4.0, 1.0])
def test_cost_model_buckets_are_the_reducers(spec, bucket_mb):
    prof = _profile()
    ex = prof.exchange(bucket_mb, build_compressor(spec)[0])
    plan = _reducer_plan(spec, bucket_mb)
    assert [b for b, _ in ex.buckets] == [4.0 * (e - s) for s, e, _ in plan]
    # each bucket is ready when its close group (its input-side layer) is
    n = len(VGG)
    assert [f for _, f in ex.buckets] == [(n - g) / (n + 1) for _, _, g in plan]


def test_dense_payloads_get_more_buckets_and_old_rows_keep_the_plain_cut():
    prof = _profile()
    by_payload, plain = exchange_for(prof, "int8", 4.0, None), prof.exchange(4.0)
    assert len(by_payload.buckets) > len(plain.buckets)     # int8: smaller buckets
    assert exchange_for(prof, "terngrad", 4.0).buckets == plain.buckets
    # a row that reports the plain cut's count ran before the payload plan
    assert exchange_for(prof, "int8", 4.0, len(plain.buckets)).buckets == plain.buckets
    assert exchange_for(prof, "int8", 4.0, len(by_payload.buckets)).buckets == by_payload.buckets
