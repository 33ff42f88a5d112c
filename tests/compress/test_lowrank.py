"""PowerSGD's batched passes (csrc/lowrank.c and the numpy twins) against a float64
numpy oracle, the compiled kernels' determinism over thread counts, and the PowerSGD
compressor on the compiled kernels against the same compressor on the twins."""
import numpy as np
import pytest
import threadpoolctl

from dtnn.compress import lowrank_twins
from dtnn.compress.base import Unit, build_compressor

try:
    from dtnn._kernels import _summable as _lowrank
except ImportError:  # pragma: no cover - the suite builds the extensions
    _lowrank = None

IMPLS = [pytest.param(lowrank_twins, id="numpy")]
IMPLS.append(pytest.param(_lowrank, id="compiled", marks=pytest.mark.skipif(
    _lowrank is None, reason="dtnn._kernels._summable not built")))

#: (rows, cols, rank): odd sizes (not multiples of the 16 lanes), rank 1..4, a single row
SHAPES = [(7, 37, 2), (64, 288, 2), (1, 19, 1), (33, 130, 3), (16, 17, 4), (128, 1152, 2)]
#: float32 against float64: relative to the scale of the result
TOL = 2e-5


def _layout(shapes, gap=5):
    """(shape array, offsets with gaps between the matrices, vector size)."""
    offs, o = [], gap
    for rows, cols, _ in shapes:
        offs.append(o)
        o += rows * cols + gap
    return np.array(shapes, np.int64).reshape(-1, 3), np.array(offs, np.int64), o


def _close(got, want, what):
    scale = max(float(np.abs(want).max()), 1e-30)
    err = float(np.abs(got.astype(np.float64) - want).max()) / scale
    assert err <= TOL, f"{what}: max error {err:.3g} of the scale"


def _mats(vec, shapes, offs):
    return [vec[o:o + r * c].reshape(r, c) for (r, c, _), o in zip(shapes, offs)]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("with_g", [True, False])
def test_encode_against_float64(impl, with_g):
    rng = np.random.default_rng(1)
    shape, offs, size = _layout(SHAPES)
    m = rng.standard_normal(size).astype(np.float32)
    g = rng.standard_normal(size + 11).astype(np.float32)
    g_offs = offs + 11
    q = rng.standard_normal(sum(c * r for _, c, r in SHAPES)).astype(np.float32)
    p = np.full(sum(rw * r for rw, _, r in SHAPES), np.nan, np.float32)
    m0 = m.copy()
    impl.lr_encode(m, offs, g if with_g else None, g_offs if with_g else None, shape, q, p)
    po = qo = 0
    for (rows, cols, r), o, go in zip(SHAPES, offs, g_offs):
        want_m = m0[o:o + rows * cols].astype(np.float64)
        if with_g:
            want_m = want_m + g[go:go + rows * cols]
        # the add is one float32 rounding: exact against float32 arithmetic
        np.testing.assert_array_equal(
            m[o:o + rows * cols],
            (m0[o:o + rows * cols] + g[go:go + rows * cols]) if with_g else m0[o:o + rows * cols])
        want_p = want_m.reshape(rows, cols) @ q[qo:qo + cols * r].reshape(cols, r).astype(np.float64)
        _close(p[po:po + rows * r].reshape(rows, r), want_p, f"P of {rows}x{cols} r{r}")
        po += rows * r
        qo += cols * r
    gaps = np.ones(size, bool)
    for (rows, cols, _), o in zip(SHAPES, offs):
        gaps[o:o + rows * cols] = False
    np.testing.assert_array_equal(m[gaps], m0[gaps])    # nothing outside the matrices


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("ef", [True, False])
def test_round2_against_float64(impl, ef):
    rng = np.random.default_rng(2)
    shape, offs, size = _layout(SHAPES)
    m = rng.standard_normal(size).astype(np.float32)
    p = rng.standard_normal(sum(rw * r for rw, _, r in SHAPES)).astype(np.float32)
    q = np.full(sum(c * r for _, c, r in SHAPES), np.nan, np.float32)
    m0 = m.copy()
    impl.lr_round2(m, offs, shape, p, q, ef)
    po = qo = 0
    for (rows, cols, r), o in zip(SHAPES, offs):
        mat = m0[o:o + rows * cols].reshape(rows, cols).astype(np.float64)
        pm = p[po:po + rows * r].reshape(rows, r).astype(np.float64)
        want_q = mat.T @ pm
        _close(q[qo:qo + cols * r].reshape(cols, r), want_q, f"Q of {rows}x{cols} r{r}")
        # the residual from this Q, as the kernel computed it
        qm = q[qo:qo + cols * r].reshape(cols, r).astype(np.float64)
        want_m = mat - pm @ qm.T if ef else mat
        _close(m[o:o + rows * cols].reshape(rows, cols), want_m, f"M of {rows}x{cols}")
        po += rows * r
        qo += cols * r


@pytest.mark.parametrize("impl", IMPLS)
def test_decode_against_float64(impl):
    rng = np.random.default_rng(3)
    shape, offs, size = _layout(SHAPES)
    out = np.full(size, 7.0, np.float32)
    p = rng.standard_normal(sum(rw * r for rw, _, r in SHAPES)).astype(np.float32)
    q = rng.standard_normal(sum(c * r for _, c, r in SHAPES)).astype(np.float32)
    impl.lr_decode(out, offs, shape, p, q, 0.25)
    po = qo = 0
    written = np.zeros(size, bool)
    for (rows, cols, r), o in zip(SHAPES, offs):
        want = 0.25 * (p[po:po + rows * r].reshape(rows, r).astype(np.float64)
                       @ q[qo:qo + cols * r].reshape(cols, r).T.astype(np.float64))
        _close(out[o:o + rows * cols].reshape(rows, cols), want, f"decode {rows}x{cols}")
        written[o:o + rows * cols] = True
        po += rows * r
        qo += cols * r
    assert np.all(out[~written] == 7.0)


@pytest.mark.parametrize("impl", IMPLS)
def test_orthonormalize_against_float64(impl):
    rng = np.random.default_rng(4)
    shapes = [(50, 9, 3), (8, 3, 1), (300, 5, 2)]
    shape = np.array(shapes, np.int64)
    p = rng.standard_normal(sum(rw * r for rw, _, r in shapes)).astype(np.float32)
    p[-2 * 300 + 1::2] = 0.0   # the last matrix's second column is zero: divided by eps
    p0 = p.copy()
    impl.lr_orthonormalize(p, shape)
    po = 0
    for rows, _, r in shapes:
        got = p[po:po + rows * r].reshape(rows, r).astype(np.float64)
        a = p0[po:po + rows * r].reshape(rows, r).astype(np.float64)
        want = a.copy()       # modified Gram-Schmidt in float64
        for k in range(r):
            for j in range(k):
                want[:, k] -= (want[:, j] @ want[:, k]) * want[:, j]
            want[:, k] /= max(np.linalg.norm(want[:, k]), 1e-8)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        po += rows * r


@pytest.mark.skipif(_lowrank is None, reason="dtnn._kernels._summable not built")
def test_compiled_bits_do_not_depend_on_threads():
    rng = np.random.default_rng(5)
    shapes = [(256, 2304, 2), (64, 288, 3)]   # the first is above the parallel threshold
    shape, offs, size = _layout(shapes)
    m0 = rng.standard_normal(size).astype(np.float32)
    g = rng.standard_normal(size).astype(np.float32)
    q0 = rng.standard_normal(sum(c * r for _, c, r in shapes)).astype(np.float32)
    runs = []
    for n in (1, 2):
        with threadpoolctl.threadpool_limits(n, user_api="openmp"):
            m = m0.copy()
            p = np.empty(sum(rw * r for rw, _, r in shapes), np.float32)
            q = np.empty_like(q0)
            out = np.zeros(size, np.float32)
            _lowrank.lr_encode(m, offs, g, offs, shape, q0, p)
            _lowrank.lr_orthonormalize(p, shape)
            _lowrank.lr_round2(m, offs, shape, p, q, True)
            _lowrank.lr_decode(out, offs, shape, p, q, 0.5)
            runs.append((m, p, q, out))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(_lowrank is None, reason="dtnn._kernels._summable not built")
def test_compiled_rejects_bad_layouts():
    shape = np.array([(4, 5, 2)], np.int64)
    m = np.zeros(19, np.float32)    # one short of 4 x 5
    with pytest.raises(ValueError, match="outside"):
        _lowrank.lr_encode(m, np.zeros(1, np.int64), None, None, shape,
                           np.zeros(10, np.float32), np.zeros(8, np.float32))
    with pytest.raises(ValueError, match="expected"):
        _lowrank.lr_decode(np.zeros(20, np.float32), np.zeros(1, np.int64), shape,
                           np.zeros(7, np.float32), np.zeros(10, np.float32), 1.0)
    with pytest.raises(ValueError, match="float32"):
        _lowrank.lr_round2(np.zeros(20), np.zeros(1, np.int64), shape,
                           np.zeros(8, np.float32), np.zeros(10, np.float32), True)


def _unit():
    shapes = [(256, 10), (10,), (64, 32, 3, 3), (64,), (32, 3, 3, 3), (128, 64, 3, 3), (3, 2)]
    tensors, off = [], 0
    for s in shapes:
        tensors.append((off, s))
        off += int(np.prod(s))
    return Unit(0, off, tensors)


def _steps(monkeypatch, impl, ranges=False, steps=3):
    """Three steps of PowerSGD (rank 2, error feedback) on one rank, with the kernels of
    ``impl``: payloads, decoded gradients, residual, warm-start Q."""
    import dtnn.compress.powersgd as ps
    monkeypatch.setattr(ps, "lr", impl)
    comp, _ = build_compressor("powersgd:rank=2")
    comp.setup(1, 0, seed=3)
    unit = _unit()
    rng = np.random.default_rng(6)
    res = np.zeros(unit.size, np.float32)
    out = []
    for step in range(steps):
        unit.step = step
        x = rng.standard_normal(unit.size).astype(np.float32)
        if ranges:   # the unit as two ranges of a flat vector with a gap between them
            cut = unit.tensors[3][0]
            flat = np.full(unit.size + 9, np.nan, np.float32)
            rg = [(0, cut), (cut + 9, unit.size + 9)]
            flat[:cut], flat[cut + 9:] = x[:cut], x[cut:]
            p1 = comp.compress_ranges(flat, rg, unit, res)
            q = comp.next_round(p1, unit)
            comp.decompress_set_ranges(q, flat, rg, 1.0, unit)
            dec = np.concatenate([flat[:cut], flat[cut + 9:]])
            assert np.all(np.isnan(flat[cut:cut + 9])), "the gap is left alone"
        else:
            p1 = comp.compress(x, unit, res)
            q = comp.next_round(p1, unit)
            dec = x
            comp.decompress_set(q, dec, 1.0, unit)
        out.append((p1.copy(), q.copy(), dec.copy(), res.copy()))
    qs = {k: v.copy() for k, v in comp.state_dict()["q"].items()}
    return out, qs


def test_powersgd_compiled_matches_twins(monkeypatch):
    if _lowrank is None:
        pytest.skip("dtnn._kernels._summable not built")
    twin, q_twin = _steps(monkeypatch, lowrank_twins)
    comp, q_comp = _steps(monkeypatch, _lowrank)
    for s, (a, b) in enumerate(zip(twin, comp)):
        for what, u, v in zip(("P", "Q", "decoded", "residual"), a, b):
            np.testing.assert_allclose(v, u, rtol=1e-3, atol=1e-4 * float(np.abs(u).max()),
                                       err_msg=f"step {s}: {what}")
    assert q_twin.keys() == q_comp.keys()


@pytest.mark.parametrize("impl", IMPLS)
def test_powersgd_ranges_equal_staged(monkeypatch, impl):
    """Encoding from / decoding into a flat vector's ranges gives the same bits as the
    unit's own vector; the warm start is the summed Q."""
    staged, q_a = _steps(monkeypatch, impl)
    direct, q_b = _steps(monkeypatch, impl, ranges=True)
    for a, b in zip(staged, direct):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    for k in q_a:
        np.testing.assert_array_equal(q_a[k], q_b[k])
    last_q = staged[-1][1]
    by_offset = sorted(q_a, key=lambda k: int(k.split("_")[1]))
    np.testing.assert_array_equal(np.concatenate([q_a[k].ravel() for k in by_offset]), last_q)


def test_powersgd_decode_is_the_error_feedback_complement(monkeypatch):
    """One rank: decoded + new residual == gradient + old residual (float64 check)."""
    import dtnn.compress.powersgd as ps
    comp, _ = build_compressor("powersgd:rank=2")
    comp.setup(1, 0, seed=1)
    unit = _unit()
    rng = np.random.default_rng(7)
    res = rng.standard_normal(unit.size).astype(np.float32)
    x = rng.standard_normal(unit.size).astype(np.float32)
    want = x.astype(np.float64) + res
    p1 = comp.compress(x.copy(), unit, res)
    q = comp.next_round(p1, unit)
    dec = np.empty(unit.size, np.float32)
    comp.decompress_set(q, dec, 1.0, unit)
    np.testing.assert_allclose(dec.astype(np.float64) + res, want, atol=2e-5)
    assert ps.lr is not None
