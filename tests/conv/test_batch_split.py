"""Per-image GEMMs split over the batch (dtnn.conv.batch_split): every part runs, on
as many threads as configured, with BLAS single-threaded meanwhile and restored after;
results are bit-identical to the unsplit matmul (one thread computes each image)."""
import threading

import numpy as np
import pytest

from dtnn.conv import batch_split as bs
from dtnn.conv import ConvGeometry
from dtnn.conv.im2col import Im2ColConv
from dtnn.threads import one_pool, set_threads


@pytest.fixture
def two_threads():
    from dtnn.tune import current_threads
    before = current_threads()
    set_threads(2)
    yield
    set_threads(before)


def test_parts_cover_the_batch_on_two_threads(two_threads):
    if not bs._blas_controllers():
        pytest.skip("threadpoolctl sees no BLAS library: split_batch never splits")
    seen, blas_threads = [], []

    def fn(lo, hi):
        seen.append((lo, hi, threading.current_thread().name))
        blas_threads.append(bs._blas_controllers()[0].get_num_threads())

    bs.split_batch(fn, 7)
    assert sorted((lo, hi) for lo, hi, _ in seen) == [(0, 3), (3, 7)]
    assert len({name for _, _, name in seen}) == 2 and blas_threads == [1, 1]
    # restored: one thread when the BLAS runs single-threaded ("one pool", dtnn.gemm)
    assert bs._blas_controllers()[0].get_num_threads() == (1 if one_pool() else 2)
    seen.clear()
    bs.split_batch(fn, 7, flops=1e3)           # too little work: one call, no hand-off
    assert [(lo, hi) for lo, hi, _ in seen] == [(0, 7)]


def test_errors_propagate_and_blas_threads_are_restored(two_threads):
    def fn(lo, hi):
        if lo == 0:
            raise RuntimeError("part failed")

    with pytest.raises(RuntimeError, match="part failed"):
        bs.split_batch(fn, 4)
    for c in bs._blas_controllers():
        assert c.get_num_threads() == (1 if one_pool() else 2)


def test_one_thread_is_one_call(two_threads):
    set_threads(1)
    calls = []
    bs.split_batch(lambda lo, hi: calls.append((lo, hi)), 9)
    assert calls == [(0, 9)]


def test_pointwise_passes_are_bit_identical_split_or_not(two_threads):
    rng = np.random.default_rng(0)
    g = ConvGeometry(16, 96, 9, 9, 80, 1, 1)
    x = rng.standard_normal((16, 96, 9, 9)).astype(np.float32)
    w = rng.standard_normal((80, 96, 1, 1)).astype(np.float32)
    b = rng.standard_normal(80).astype(np.float32)
    dy = rng.standard_normal((16, 80, 9, 9)).astype(np.float32)
    alg = Im2ColConv()
    y = alg.forward(x, w, b, g)
    dx = alg.backward(dy, x, w, g, True, np.empty_like(w), None)
    ref_y = np.matmul(w.reshape(80, 96), x.reshape(16, 96, 81)).reshape(y.shape) \
        + b.reshape(1, 80, 1, 1)
    ref_dx = np.matmul(w.reshape(80, 96).T, dy.reshape(16, 80, 81)).reshape(x.shape)
    np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-5, atol=1e-4)
    set_threads(1)
    np.testing.assert_array_equal(alg.forward(x, w, b, g), y)
    np.testing.assert_array_equal(alg.backward(dy, x, w, g, True, np.empty_like(w), None), dx)


def test_pointwise_on_the_openmp_team_same_bits_at_any_thread_count(two_threads):
    # at 2 threads (one pool) the 1x1 passes are one GEMM on the OpenMP team, adding its
    # products to the bias already in y; at 1 thread the same call on one thread
    rng = np.random.default_rng(1)
    g = ConvGeometry(6, 512, 5, 5, 40, 1, 1)
    x = rng.standard_normal((6, 512, 5, 5)).astype(np.float32)
    w = rng.standard_normal((40, 512, 1, 1)).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    dy = rng.standard_normal((6, 40, 5, 5)).astype(np.float32)
    alg = Im2ColConv()
    y = alg.forward(x, w, b, g)
    dx = alg.backward(dy, x, w, g, True, np.empty_like(w), None)
    w64, x64, dy64 = (a.astype(np.float64) for a in (w.reshape(40, 512), x.reshape(6, 512, 25),
                                                     dy.reshape(6, 40, 25)))
    ref_y = (np.matmul(w64, x64) + b.reshape(1, 40, 1)).reshape(y.shape)
    ref_dx = np.matmul(w64.T, dy64).reshape(x.shape)
    np.testing.assert_allclose(y, ref_y, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-4, atol=1e-3)
    set_threads(1)
    np.testing.assert_array_equal(alg.forward(x, w, b, g), y)
    np.testing.assert_array_equal(alg.backward(dy, x, w, g, True, np.empty_like(w), None), dx)
