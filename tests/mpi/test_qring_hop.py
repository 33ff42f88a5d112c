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


def _assert_same_training(a, ra, b, rb, what: str) -> None:
    """Two runs (model, reducer) trained the same: replicas of ``a`` bit-identical,
    ``a``'s parameters equal ``b``'s bit for bit, same error-feedback residuals, same
    bytes sent."""
    params = gather_params(a)
    assert_all(all(np.array_equal(p, params[0]) for p in params), "replicas bit-identical")
    assert_all(np.array_equal(a.flat_params, b.flat_params), what,
               f"{max_rel_diff(a.flat_params, b.flat_params):.3g}")
    assert_all(_same_tree(ra.exchange.local_state(), rb.exchange.local_state()),
               "same error-feedback residuals")
    assert_all(ra.stats()["sent_bytes"] == rb.stats()["sent_bytes"], "same bytes")


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
    _assert_same_training(a, ra, b, rb, f"{spec}: fused == staged")


@pytest.mark.parametrize("spec", ["terngrad", "sign", "qsgd:bits=8", "sign:ef=false"])
def test_cached_layout_equals_fresh_layout(ctx, spec, monkeypatch):
    """The ring's per-bucket layout (bounds, sub-units, pieces, payload buffers) is
    built once and reused every step: the same bits as building it for every op,
    replicas bit-identical, one layout object per bucket over the whole run."""
    from dtnn.parallel.collectives import cx_qring as Q
    built = []
    real = Q._Layout.__init__

    def counted(self, *a, **k):
        built.append(self)
        real(self, *a, **k)

    monkeypatch.setattr(Q._Layout, "__init__", counted)
    a, _, ra = _train(ctx, spec, bucket_mb=0.001, collective="qring")
    n_cached = len(built)
    plans = [p for p in ra.exchange.plans if p.unit is not None]
    assert_all(n_cached == len(plans), f"{spec}: one layout per bucket",
               f"{n_cached} built for {len(plans)} buckets")
    built.clear()
    layout = Q.QRingTransport.layout

    def fresh(self, plan):
        plan.cache.pop("qring", None)
        return layout(self, plan)

    monkeypatch.setattr(Q.QRingTransport, "layout", fresh)
    b, _, rb = _train(ctx, spec, bucket_mb=0.001, collective="qring")
    assert_all(len(built) > n_cached, "the reference builds a layout per op")
    _assert_same_training(a, ra, b, rb, f"{spec}: cached == fresh")


def test_layout_follows_a_loaded_residual(ctx):
    """A checkpoint load replaces the error-feedback vectors: the cached layout cuts
    the new ones (the hop writes the residual the exchange holds, not a stale one)."""
    model, _, red = _train(ctx, "sign", bucket_mb=0.001, collective="qring")
    state = red.exchange.local_state()
    red.exchange.load_local_state(state)      # new residual arrays, same values
    plan = next(p for p in red.exchange.plans if p.unit is not None)
    L = plan.cache["qring"]
    res = red.exchange.residual(plan.unit)
    parts = L.residual_parts(res)
    assert_all(all(np.shares_memory(q, res) for q in parts if q.size),
               "the slices cut the loaded residual")
