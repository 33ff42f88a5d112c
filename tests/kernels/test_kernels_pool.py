"""Compiled max pooling against the numpy twins (exact, including tie-breaking)."""
import itertools

import numpy as np
import pytest

from dtnn._kernels import twins

ext = pytest.importorskip(
    "dtnn._kernels._pool",
    reason="compiled kernels not built (run `pip install -e .` or "
           "`python setup.py build_ext --inplace`)")


def _geometries():
    """(N, C, H, W, R, S, sh, sw, ph, pw)."""
    cases = [
        (2, 3, 8, 8, 2, 2, 2, 2, 0, 0),      # the 2x2/2 fast path
        (1, 2, 7, 9, 2, 2, 2, 2, 0, 0),      # fast path, odd sizes (last row/col dropped)
        (1, 1, 2, 2, 2, 2, 2, 2, 0, 0),      # fast path, output 1x1
        (2, 2, 9, 9, 3, 3, 2, 2, 1, 1),      # overlapping 3x3/2 pad 1
        (1, 3, 5, 5, 5, 5, 1, 1, 0, 0),      # global pooling
        (1, 1, 4, 4, 2, 2, 1, 1, 2, 2),      # windows made only of padding
        (1, 1, 1, 1, 1, 1, 1, 1, 0, 0),
        (1, 2, 6, 5, 3, 2, 3, 1, 1, 0),
    ]
    rng = np.random.default_rng(4321)
    while len(cases) < 50:
        N, C = int(rng.integers(1, 4)), int(rng.integers(1, 6))
        H, W = int(rng.integers(1, 13)), int(rng.integers(1, 13))
        R, S = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        ph, pw = int(rng.integers(0, 3)), int(rng.integers(0, 3))
        if H + 2 * ph < R or W + 2 * pw < S:
            continue
        cases.append((N, C, H, W, R, S, sh, sw, ph, pw))
    return cases


GEOMS = _geometries()


def _ids(g):
    N, C, H, W, R, S, sh, sw, ph, pw = g
    return f"{N}x{C}x{H}x{W}-k{R}x{S}-s{sh}{sw}-p{ph}{pw}"


def _inputs(g):
    rng = np.random.default_rng(7)
    yield "random", rng.standard_normal(g[:4]).astype(np.float32)
    # Few distinct values: plenty of ties, which must go to the first tap.
    yield "ties", rng.integers(0, 3, g[:4]).astype(np.float32)
    # All equal: every window ties everywhere.
    yield "constant", np.full(g[:4], 0.5, np.float32)


@pytest.mark.parametrize("g", GEOMS, ids=_ids)
def test_forward_and_backward_match_twin_exactly(g):
    N, C, H, W = g[:4]
    for label, x in _inputs(g):
        y, arg = ext.maxpool_forward(x, *g[4:])
        y_t, arg_t = twins.maxpool_forward(x, *g[4:])
        assert y.dtype == np.float32 and arg.dtype == np.int32, label
        np.testing.assert_array_equal(y, y_t, err_msg=label)
        np.testing.assert_array_equal(arg, arg_t, err_msg=label)
        dy = np.random.default_rng(8).standard_normal(y.shape).astype(np.float32)
        np.testing.assert_array_equal(ext.maxpool_backward(dy, arg, H, W),
                                      twins.maxpool_backward(dy, arg_t, H, W), err_msg=label)


def test_argmax_is_first_tap_in_row_major_order():
    x = np.array([[[[1, 5, 5],
                    [5, 2, 5],
                    [0, 5, 1]]]], np.float32)
    for params in [(3, 3, 1, 1, 0, 0), (2, 2, 1, 1, 0, 0), (2, 2, 2, 2, 0, 0)]:
        y, arg = ext.maxpool_forward(x, *params)
        _, arg_t = twins.maxpool_forward(x, *params)
        np.testing.assert_array_equal(arg, arg_t)
    y, arg = ext.maxpool_forward(x, 3, 3, 1, 1, 0, 0)
    assert y[0, 0, 0, 0] == 5 and arg[0, 0, 0, 0] == 1


@pytest.mark.parametrize("params", [(2, 2, 2, 2, 0, 0), (3, 3, 2, 2, 1, 1), (2, 2, 1, 1, 2, 2)])
def test_special_values_match_twin(params):
    """-inf never beats the initial -inf (argmax stays 0), NaN never wins."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    x[0, 0] = -np.inf
    x[0, 1, ::2, 1::3] = np.nan
    x[1, 0] = np.nan
    x[1, 1, 1:3, 1:3] = np.inf
    y, arg = ext.maxpool_forward(x, *params)
    y_t, arg_t = twins.maxpool_forward(x, *params)
    np.testing.assert_array_equal(y, y_t)
    np.testing.assert_array_equal(arg, arg_t)


def test_backward_accumulates_overlapping_windows():
    x = np.zeros((1, 1, 3, 3), np.float32)
    x[0, 0, 1, 1] = 1.0                                # centre wins all 4 windows
    y, arg = ext.maxpool_forward(x, 2, 2, 1, 1, 0, 0)
    assert np.all(arg == 4)
    dx = ext.maxpool_backward(np.ones_like(y), arg, 3, 3)
    assert dx[0, 0, 1, 1] == 4.0 and dx.sum() == 4.0


def test_backward_out_buffer_and_int64_argmax():
    g = (2, 3, 8, 8, 3, 3, 2, 2, 1, 1)
    x = np.random.default_rng(10).standard_normal(g[:4]).astype(np.float32)
    y, arg = ext.maxpool_forward(x, *g[4:])
    dy = np.random.default_rng(11).standard_normal(y.shape).astype(np.float32)
    out = np.full(x.shape, np.nan, np.float32)        # overwritten, not accumulated
    dx = ext.maxpool_backward(dy, arg, 8, 8, out=out)
    assert dx is out
    want = twins.maxpool_backward(dy, arg, 8, 8)
    np.testing.assert_array_equal(dx, want)
    np.testing.assert_array_equal(ext.maxpool_backward(dy, arg.astype(np.int64), 8, 8), want)


def test_non_contiguous_input():
    big = np.random.default_rng(12).standard_normal((2, 6, 9, 9)).astype(np.float32)
    x = big[:, 1::2, :, ::-1]
    for params in [(2, 2, 2, 2, 0, 0), (3, 3, 2, 2, 1, 1)]:
        y, arg = ext.maxpool_forward(x, *params)
        y_t, arg_t = twins.maxpool_forward(x, *params)
        np.testing.assert_array_equal(y, y_t)
        np.testing.assert_array_equal(arg, arg_t)


def _bad_calls():
    x = np.zeros((2, 3, 6, 6), np.float32)
    dy = np.zeros((2, 3, 3, 3), np.float32)
    arg = np.zeros((2, 3, 3, 3), np.int32)
    bad_arg = arg.copy()
    bad_arg[1, 2, 0, 0] = 36
    neg_arg = arg.copy()
    neg_arg[0, 0, 1, 1] = -1
    return [
        lambda: ext.maxpool_forward(x.astype(np.float64), 2, 2, 2, 2, 0, 0),
        lambda: ext.maxpool_forward(x[0], 2, 2, 2, 2, 0, 0),
        lambda: ext.maxpool_forward(x, 7, 2, 1, 1, 0, 0),
        lambda: ext.maxpool_forward(x, 0, 2, 1, 1, 0, 0),
        lambda: ext.maxpool_forward(x, 2, 2, 0, 1, 0, 0),
        lambda: ext.maxpool_forward(x, 2, 2, 1, 1, -1, 0),
        lambda: ext.maxpool_backward(dy.astype(np.float64), arg, 6, 6),
        lambda: ext.maxpool_backward(dy, arg.astype(np.float32), 6, 6),
        lambda: ext.maxpool_backward(dy, arg[:, :2], 6, 6),
        lambda: ext.maxpool_backward(dy, bad_arg, 6, 6),
        lambda: ext.maxpool_backward(dy, neg_arg, 6, 6),
        lambda: ext.maxpool_backward(dy, arg, 6, 6, out=np.zeros((2, 3, 6, 5), np.float32)),
        lambda: ext.maxpool_backward(dy, arg, 6, 6, out=np.zeros((2, 3, 6, 6), np.float64)),
    ]


@pytest.mark.parametrize("i", range(len(_bad_calls())))
def test_bad_input_raises_value_error(i):
    with pytest.raises(ValueError):
        _bad_calls()[i]()


def test_thread_count_does_not_change_results():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    x = np.random.default_rng(13).standard_normal((4, 16, 24, 24)).astype(np.float32)
    res = []
    for n, params in itertools.product((1, 2), [(2, 2, 2, 2, 0, 0), (3, 3, 1, 1, 1, 1)]):
        with threadpoolctl.threadpool_limits(n, user_api="openmp"):
            y, arg = ext.maxpool_forward(x, *params)
            res.append((y, arg, ext.maxpool_backward(y, arg, 24, 24)))
    for a, b in zip(res[:2], res[2:]):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
