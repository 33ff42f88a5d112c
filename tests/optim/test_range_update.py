"""``Optimizer.begin_step()``: one step's update applied range by range (the deferred
update of dist.defer_update, #17).  Oracle: ``step()`` over the whole vector, bit for
bit, for the compiled kernels (float32) and the numpy twins (float64 vectors), with the
learning rate changed after ``begin_step`` (the update keeps the scalars of its step)."""
import numpy as np
import pytest

from dtnn.optim import SGD, Adam, AdamW

CASES = [
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    (SGD, dict(lr=0.1, momentum=0.5, dampening=0.2)),
    (SGD, dict(lr=0.1)),
    (Adam, dict(lr=1e-3, weight_decay=1e-2)),
    (AdamW, dict(lr=1e-3)),
]
RANGES = [(7000, 10007), (0, 13), (13, 4096), (4096, 7000)]   # out of order, odd cuts


def _vectors(dtype):
    rng = np.random.default_rng(0)
    n = RANGES[0][1]
    p = rng.standard_normal(n).astype(dtype)
    mask = (np.arange(n) % 3 != 0).astype(dtype)
    return p, np.zeros(n, dtype), mask


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls,kw", CASES)
def test_range_updates_equal_step_bit_for_bit(cls, kw, dtype):
    finals = []
    for ranged in (False, True):
        p, g, mask = _vectors(dtype)
        opt = cls(p, g, mask, **kw)
        draws = np.random.default_rng(1)
        for _ in range(4):
            g[:] = draws.standard_normal(g.size)
            if ranged:
                update = opt.begin_step()
                lr = opt.lr
                opt.lr = 123.0            # changed after begin_step: must not matter
                for lo, hi in RANGES:
                    update(lo, hi)
                opt.lr = lr
            else:
                opt.step()
            opt.lr *= 0.9
        finals.append((p.copy(), opt.state_dict()))
    (p0, s0), (p1, s1) = finals
    assert np.array_equal(p0, p1)
    assert s0.keys() == s1.keys() and s0["steps"] == s1["steps"] == 4
    for k in s0:
        assert np.array_equal(np.asarray(s0[k]), np.asarray(s1[k])), k


def test_a_missed_range_is_visible():
    """The check above can fail: leaving one range out changes the parameters."""
    p, g, mask = _vectors(np.float32)
    q = p.copy()
    g[:] = 1.0
    SGD(p, g, mask, lr=0.1).step()
    update = SGD(q, g.copy(), mask, lr=0.1).begin_step()
    for lo, hi in RANGES[1:]:
        update(lo, hi)
    assert not np.array_equal(p, q)
