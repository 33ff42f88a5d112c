"""Batched GEMM on dtnn's OpenMP threads (csrc/gemm.c via dtnn.gemm): against float64
numpy products for every layout BLAS reads (as stored, transposed, broadcast, strided
rows), batch sizes that do and do not divide the thread count (whole matrices per
thread vs slabs of M or N), 1-3 threads; the fallbacks (layouts BLAS cannot read,
overlap, other dtypes) give numpy's answer; set_threads' one-pool setting."""
import numpy as np
import pytest

from dtnn import gemm

ext = pytest.importorskip(
    "dtnn._kernels._gemm",
    reason="compiled kernels not built (run `pip install -e .`)")
threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl not installed")

needs_blas = pytest.mark.skipif(not gemm.available(),
                                reason="no OpenBLAS cblas_sgemm found in this process "
                                       "(dtnn.gemm falls back to numpy)")


def _rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _check(a, b, out):
    ref = np.matmul(a.astype(np.float64), b.astype(np.float64))
    scale = np.abs(a).max(initial=1) * np.abs(b).max(initial=1) * max(a.shape[-1], 1)
    np.testing.assert_allclose(out, ref.reshape(out.shape), rtol=0, atol=4e-7 * scale)


def _operand(shape, layout, seed):
    """A (G, r, c) float32 array in the given memory layout."""
    G, r, c = shape
    if layout == "c":
        return _rand(shape, seed)
    if layout == "t":                  # stored (G, c, r), viewed transposed
        return _rand((G, c, r), seed).transpose(0, 2, 1)
    if layout == "ld":                 # rows padded: a slice of a wider array
        return _rand((G, r, c + 5), seed)[:, :, 2:2 + c]
    if layout == "bcast":              # one matrix for the whole batch
        return _rand((1, r, c), seed)
    raise AssertionError(layout)


@needs_blas
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("G,M,N,K", [(1, 37, 70, 19), (1, 70, 9, 33), (2, 16, 16, 16),
                                     (3, 5, 130, 7), (9, 24, 40, 17), (5, 1, 1, 3),
                                     (1, 200, 3, 64)])
@pytest.mark.parametrize("la,lb", [("c", "c"), ("t", "c"), ("c", "t"), ("t", "t"),
                                   ("ld", "c"), ("c", "ld"), ("bcast", "c"),
                                   ("c", "bcast")])
def test_compiled_vs_float64(threads, G, M, N, K, la, lb):
    a = _operand((G, M, K), la, 1)
    b = _operand((G, K, N), lb, 2)
    out = np.full((G, M, N), np.nan, np.float32)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        sgemm, ilp64 = gemm._find_sgemm()
        assert ext.matmul3(sgemm, ilp64, a, b, out, threads)
    _check(np.broadcast_to(a, (G, M, K)), np.broadcast_to(b, (G, K, N)), out)


@needs_blas
def test_thread_counts_agree_closely():
    a, b = _rand((1, 64, 300), 3), _rand((1, 300, 96), 4)
    outs = []
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        for t in (1, 2, 4):
            out = np.empty((1, 64, 96), np.float32)
            assert ext.matmul3(gemm._find_sgemm()[0], gemm._find_sgemm()[1], a, b, out, t)
            outs.append(out)
    for o in outs[1:]:
        np.testing.assert_allclose(o, outs[0], rtol=1e-5, atol=1e-5)


@needs_blas
def test_unreadable_layouts_and_overlap_are_refused():
    sgemm, ilp64 = gemm._find_sgemm()
    a = _rand((2, 6, 8), 5)
    b = _rand((2, 8, 4), 6)
    out = np.zeros((2, 6, 4), np.float32)
    strided = _rand((2, 6, 16), 7)[:, :, ::2]          # neither rows nor columns unit
    assert not ext.matmul3(sgemm, ilp64, strided, b, out, 2)
    assert not ext.matmul3(sgemm, ilp64, a, b, out.transpose(0, 2, 1).copy()
                           .transpose(0, 2, 1), 2)     # column-major output
    square = _rand((1, 8, 8), 8)
    assert not ext.matmul3(sgemm, ilp64, square, square[:, :, :8], square, 2)
    assert not (out != 0).any()                        # nothing was written
    with pytest.raises(ValueError, match="disagree"):
        ext.matmul3(sgemm, ilp64, a, _rand((2, 7, 4), 9), out, 2)
    with pytest.raises(ValueError, match="float32"):
        ext.matmul3(sgemm, ilp64, a.astype(np.float64), b, out, 2)


@pytest.mark.parametrize("one_pool", [False, True])
def test_matmul_matches_numpy_everywhere(monkeypatch, one_pool):
    import dtnn.threads as th
    monkeypatch.setattr(th, "_one_pool", one_pool)
    monkeypatch.setattr(th, "_threads", 2)
    cases = [(_rand((40, 30), 1), _rand((30, 50), 2)),                    # 2-D
             (_rand((40, 30), 1).T, _rand((40, 50), 2)),                  # x.T @ dy
             (_rand((4, 40, 30), 1), _rand((30, 50), 2)),                 # stack @ 2-D
             (_rand((30, 40), 1), _rand((4, 40, 20), 2)[:, :, ::2]),      # unreadable
             (_rand((30, 40), 1).astype(np.float64), _rand((40, 5), 2))]  # float64
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        for a, b in cases:
            got = gemm.matmul(a, b)
            assert got.shape == np.matmul(a, b).shape and got.dtype == np.matmul(a, b).dtype
            _check(np.asarray(a, np.float64), np.asarray(b, np.float64), got)
            out = np.empty_like(got)
            assert gemm.matmul(a, b, out=out) is out
            np.testing.assert_array_equal(out, got)


@needs_blas
def test_set_threads_one_pool(monkeypatch):
    import dtnn.threads as th
    from dtnn.tune import current_threads
    before = current_threads()
    monkeypatch.setenv("DTNN_ONE_POOL", "1")
    try:
        th.set_threads(2)
        assert th.one_pool()
        info = {i["internal_api"]: i["num_threads"]
                for i in threadpoolctl.threadpool_info()}
        assert info.get("openblas") == 1
        monkeypatch.setenv("DTNN_ONE_POOL", "0")
        th.set_threads(2)
        assert not th.one_pool()
        info = {i["internal_api"]: i["num_threads"]
                for i in threadpoolctl.threadpool_info()}
        assert info.get("openblas") == 2
    finally:
        monkeypatch.delenv("DTNN_ONE_POOL")
        th.set_threads(before)


@needs_blas
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("beta", [0.0, 1.0, 0.5])
def test_accumulate_and_sum_over_the_stack(threads, beta):
    """gemm_into: out = a @ b + beta * out, and an out of batch 1 sums the stack's
    products (the per-tap weight gradient of tapgemm), against float64 and the twin."""
    a = _rand((3, 20, 12), 10).transpose(0, 2, 1)       # (3, 12, 20), transposed view
    b = _rand((3, 20, 40), 11)
    out0 = _rand((1, 12, 40), 12)
    ref = np.matmul(a.astype(np.float64), b).sum(axis=0, keepdims=True) + beta * out0
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        out = out0.copy()
        assert ext.matmul3(gemm._find_sgemm()[0], gemm._find_sgemm()[1], a, b, out,
                           threads, beta)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4)
    twin = out0.copy()
    gemm.gemm_into_twin(a, b, twin, beta)
    np.testing.assert_allclose(twin, ref, rtol=0, atol=1e-4)
    stack = _rand((3, 12, 40), 13)
    ref = np.matmul(a.astype(np.float64), b) + beta * stack
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        out = stack.copy()
        gemm.gemm_into(a, b, out, beta)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4)
