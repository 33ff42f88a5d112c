"""The quantised ring's fused hop under MPI: with ``kernels.qring_hop`` (decode +
add our pieces + re-encode in one call) and ``kernels.decode_pieces`` the training
gives the same bits as the unfused staged reference (``DTNN_CX_STAGE=always``: copy,
``decompress_add``, ``compress``): parameters on every rank, error-feedback residuals,
bytes; the replicas stay bit-identical; the fused calls really ran (or, for error
feedback on a stochastic quantiser, the ring kept the unfused path)."""
import numpy as np
import pytest

from dtnn.compress import kernels as K
from dtnn.parallel.mpi import MPIContext

from ._helpers import assert_all, gather_params, max_rel_diff
from .test_compress import _same_tree, _train

pytestmark = [pytest.mark.mpi(min_size=2), pytest.mark.timeout(120, method="thread")]


@pytest.fixture(scope="module")
def ctx():
    return MPIContext()


@pytest.mark.parametrize("spec,fused", [
    ("int8", True), ("qsgd:bits=8", True), ("terngrad", True), ("sign", True),
    ("sign:ef=false", True), ("terngrad:ef=true", False)])
@pytest.mark.parametrize("bucket_mb", [4.0, 0.001])
def test_fused_hop_equals_staged_reference(ctx, spec, fused, bucket_mb, monkeypatch):
    calls = {"hop": 0, "decode": 0}
    hop, dec = K.qring_hop, K.decode_pieces

    def counted_hop(*a, **k):
        calls["hop"] += 1
        return hop(*a, **k)

    def counted_decode(*a, **k):
        calls["decode"] += 1
        return dec(*a, **k)

    monkeypatch.setattr(K, "qring_hop", counted_hop)
    monkeypatch.setattr(K, "decode_pieces", counted_decode)
    runs = {}
    for stage in ("always", ""):
        monkeypatch.setenv("DTNN_CX_STAGE", stage)
        before = dict(calls)
        runs[stage] = _train(ctx, spec, bucket_mb=bucket_mb, collective="qring")
        if stage == "always":
            assert_all(calls == before, "the reference runs unfused")
    (a, _, ra), (b, _, rb) = runs[""], runs["always"]
    assert_all((calls["hop"] > 0 and calls["decode"] > 0) == fused,
               f"{spec}: fused calls ran", str(calls))
    params = gather_params(a)
    assert_all(all(np.array_equal(p, params[0]) for p in params), "replicas bit-identical")
    assert_all(np.array_equal(a.flat_params, b.flat_params), f"{spec}: fused == staged",
               f"{max_rel_diff(a.flat_params, b.flat_params):.3g}")
    assert_all(_same_tree(ra.exchange.local_state(), rb.exchange.local_state()),
               "same error-feedback residuals")
    assert_all(ra.stats()["sent_bytes"] == rb.stats()["sent_bytes"], "same bytes")
