"""The float16 MPI reduction op against a numpy reference (fp32 add, one rounding)."""
import numpy as np
import pytest

from dtnn.parallel.fp16_sum import half_sum


@pytest.mark.parametrize("n", [1, 7, 1000, 100_003])
def test_half_sum_is_the_rounded_fp32_sum(n):
    rng = np.random.default_rng(n)
    a = (rng.standard_normal(n) * 10).astype(np.float16)
    b = (rng.standard_normal(n) * 10).astype(np.float16)
    expected = (a.astype(np.float32) + b.astype(np.float32)).astype(np.float16)
    out = b.copy()
    half_sum(memoryview(a.view(np.uint16)), memoryview(out.view(np.uint16)))
    np.testing.assert_array_equal(out.view(np.uint16), expected.view(np.uint16))
    # the input is left alone
    assert np.array_equal(a, a.copy())


def test_half_sum_overflow_and_specials():
    a = np.array([60000, np.inf, np.nan, -0.0, 1e-7], np.float16)
    b = np.array([60000, 1, 1, 0.0, 1e-7], np.float16)
    out = b.copy()
    half_sum(memoryview(a.view(np.uint16)), memoryview(out.view(np.uint16)))
    assert np.isinf(out[0]) and np.isinf(out[1]) and np.isnan(out[2])
    assert out[3] == 0 and out[4] == (np.float32(a[4]) * 2).astype(np.float16)  # subnormals kept
